"""`crosswalk feed` and `crosswalk alerts` on the embedded store: the same functions as the API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import app as cli
from service.settings import get_settings
from service.store.db import engine_for, session_scope
from tests.conftest import SAMPLES
from tests.service.conftest import crosswalk


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path))
    monkeypatch.setenv("CROSSWALK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CROSSWALK_ACTOR", "ops-cli")
    get_settings.cache_clear()
    frame = pd.read_csv(SAMPLES / "monitoring" / "measurements.csv")
    order = np.random.default_rng(0).permutation(len(frame))
    reference, current = frame.iloc[order[:800]], frame.iloc[order[800:]].copy()
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "clean.csv", index=False)
    rows = (current.measurement_source_value == "29463-7") & (current.site == "south")
    current.loc[rows, "value_as_number"] *= 2.2046
    current.loc[rows, "unit_source_value"] = "[lb_av]"
    current.to_csv(tmp_path / "pounds.csv", index=False)
    return tmp_path


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_feed_create_post_and_alert_lifecycle(env):
    assert "feed 1: labs (800 reference rows; segments: site)" in run(
        "feed", "create", "labs", "--reference", str(env / "reference.csv"), "--segment", "site"
    )
    out = run("feed", "post", "labs", str(env / "clean.csv"), str(env / "pounds.csv"), str(env / "pounds.csv"))
    assert "batch 1" in out and "opened 1" in out and "updated 1" in out
    assert "labs" in run("feed", "list") and "critical=1" in run("feed", "list")

    listed = run("alerts", "list", "--feed", "labs").splitlines()
    [line] = [row for row in listed if "unit_change" in row]
    uid = line.split()[0]
    assert "south" in line and "open" in line
    assert "acknowledged by ops-cli" in run("alerts", "ack", uid)
    assert "resolved by ops-cli" in run("alerts", "resolve", uid)
    assert not [row for row in run("alerts", "list").splitlines() if "unit_change" in row]  # default: active only
    assert uid in run("alerts", "list", "--status", "resolved")

    contract = json.loads(run("feed", "contract", "labs"))
    assert contract["segment_columns"] == ["site"]
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        from service import audit

        assert audit.verify(session).ok


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["feed", "post", "labs", "{home}/empty.csv"], "empty.csv: empty batch"),
        (["feed", "post", "labs", "{home}/missing.csv"], "missing.csv: no such file"),
        (["feed", "post", "nope", "{home}/clean.csv"], "no feed 'nope'"),
        (["feed", "create", "labs", "--reference", "{home}/reference.csv"], "already exists"),
        (["alerts", "ack", "0000"], "no alert '0000'"),
        (["feed", "create", "x", "--reference", "{home}/reference.csv", "--dask", "nowhere"], "expected tcp://HOST"),
    ],
)
def test_bad_input_is_one_line_exit_2(env, monkeypatch, capsys, args, phrase):
    from service.cli.app import main

    run("feed", "create", "labs", "--reference", str(env / "reference.csv"))
    (env / "empty.csv").write_text("")
    monkeypatch.setattr("sys.argv", ["crosswalk", *(a.format(home=env) for a in args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert phrase in err and err.count("\n") == 1 and "Traceback" not in err


def test_feed_webhook_generates_a_secret_when_none_is_given_and_refuses_inside_urls(env, monkeypatch, capsys):
    run("feed", "create", "labs", "--reference", str(env / "reference.csv"))
    metadata = ("feed", "webhook", "labs", "--url", "http://169.254.169.254/latest/meta-data/")
    code, _, err = crosswalk(monkeypatch, capsys, *metadata)
    assert code == 2 and "--url" in err and "scheme 'http' refused" in err
    monkeypatch.setenv("CROSSWALK_WEBHOOK_ALLOW_HTTP", "true")
    get_settings.cache_clear()
    code, _, err = crosswalk(monkeypatch, capsys, *metadata)
    assert code == 2 and "non-public address (169.254.169.254)" in err
    monkeypatch.setenv("CROSSWALK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    out = run("feed", "webhook", "labs", "--url", "http://127.0.0.1:9/hook")
    secret = out.split("secret (shown once; give it to the receiver): ")[1].strip()
    [kept] = list(env.rglob("*.secret"))
    assert len(secret) >= 43 and kept.read_text() == secret


def _batch_rows(feed: str) -> list[dict]:
    from service.monitoring import feeds

    with session_scope(engine_for(get_settings().database_url)) as session:
        found = feeds.get_feed(session, feed)
        return [b.model_dump() for b in feeds.list_batches(session, found)][::-1]


def test_feed_post_on_dask_stores_the_in_memory_alerts(env, dask_in_threads):
    """A quoted glob of Parquet parts, profiled on a (threaded) local cluster, is one batch whose alerts are
    those of the same rows posted in one file (that its kept profile merges into windows like any other is
    tested on the library)."""
    pounds = pd.read_csv(env / "pounds.csv")
    for i, rows in enumerate(np.array_split(np.arange(len(pounds)), 3)):
        pounds.iloc[rows].to_parquet(env / f"pounds-{i}.parquet", index=False)
    run("feed", "create", "memory", "--reference", str(env / "reference.csv"), "--segment", "site")
    run("feed", "create", "dask", "--reference", str(env / "reference.csv"), "--segment", "site", "--dask", "local:2")
    _post_in_memory("memory", env / "pounds.csv")  # no Evidently drill-down: seconds this test need not spend
    out = run("feed", "post", "dask", str(env / "pounds-*.parquet"))  # the feed's own cluster
    [expected], [got] = _batch_rows("memory"), _batch_rows("dask")
    assert "batch 1, 800 rows; 1 critical" in out
    assert got["rows"] == expected["rows"] == 800
    assert got["summary"] == {**expected["summary"], "resolved": []}
    keys = ("check", "column", "segment", "severity", "message")
    assert [[a[k] for k in keys] for a in got["alerts"]] == [[a[k] for k in keys] for a in expected["alerts"]]
    assert [a["statistic"] for a in got["alerts"]] == pytest.approx([a["statistic"] for a in expected["alerts"]])
    assert expected["summary"]["alerts"] == {"critical": 1, "warning": 0, "info": 0}
    assert got["report_file"] is None and "scored on Dask" in got["report_note"]


def _post_in_memory(feed: str, path) -> None:
    from service.monitoring import feeds

    with session_scope(engine_for(get_settings().database_url)) as session:
        found = feeds.get_feed(session, feed)
        feeds.post_batch(
            session, get_settings().home, found, feeds.Upload(path.name, path.read_bytes()), "t", evidently=False
        )


def test_feed_post_on_an_unreachable_scheduler_changes_nothing(env, monkeypatch):
    import service.cluster

    monkeypatch.setattr(service.cluster, "CONNECT_TIMEOUT", "0.5s")
    monkeypatch.setenv("CROSSWALK_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    get_settings.cache_clear()
    run("feed", "create", "labs", "--reference", str(env / "reference.csv"))
    result = CliRunner().invoke(cli, ["feed", "post", "labs", str(env / "pounds-*.csv")])
    assert "dask scheduler tcp://127.0.0.1:9: unreachable" in str(result.exception)
    assert _batch_rows("labs") == []
