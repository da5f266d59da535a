"""Monitors on a Dask cluster give the in-memory path's alerts and statistics: the library on files split in
partitions, and `crosswalk monitor --dask` on a glob of Parquet parts. Small frames, a 2-worker LocalCluster of
threads (process start-up would dominate)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import service.cluster
from monitors.profile import merge_all, profile_frame
from monitors.report import score_batch, score_profiles
from monitors.rules import PlausibilityRules
from monitors.scale import profile_dask, read_dask, score_batch_dask
from service.cli import app


@pytest.fixture
def changed(current):
    """A batch with two problems: a site's weights switched to pounds, a site's values missing in part."""
    rows = (current.measurement_source_value == "29463-7") & (current.site == "south")
    current.loc[rows, "value_as_number"] *= 2.2046
    current.loc[rows, "unit_source_value"] = "[lb_av]"
    current.loc[current.index[current.site == "north"][:150], "value_as_number"] = np.nan
    return current


@pytest.fixture
def parts(tmp_path, changed):
    """The batch as four Parquet files, the glob that names them."""
    for i, rows in enumerate(np.array_split(np.arange(len(changed)), 4)):
        changed.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    return str(tmp_path / "part-*.parquet")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _same_alerts(got, expected) -> None:
    assert [(a.check, a.column, a.segment, a.severity, a.message) for a in got] == [
        (a.check, a.column, a.segment, a.severity, a.message) for a in expected
    ]
    assert [a.statistic for a in got] == pytest.approx([a.statistic for a in expected])


def test_library_scores_partitions_as_the_whole_frame(client, parts, reference, changed, contract):
    expected = score_batch(reference, changed, contract, batch_id="b")
    got = score_batch_dask(parts, reference, contract, batch_id="b")
    assert len(expected.alerts) == 2
    _same_alerts(got.alerts, expected.alerts)
    assert got.tests == expected.tests and got.rows_current == expected.rows_current == 800
    assert [(f.check, f.column, f.segment) for f in got.findings] == [
        (f.check, f.column, f.segment) for f in expected.findings
    ]
    assert [f.p_value for f in got.findings] == pytest.approx([f.p_value for f in expected.findings])


def test_dask_profile_merges_with_kept_profiles(client, parts, reference, changed, contract):
    """A window of batches is a merge of kept profiles wherever each was computed: a profile from the cluster
    merged with one made in memory scores as both batches read together."""
    rules = PlausibilityRules()
    on_cluster = profile_dask(read_dask(parts, contract), contract, "site", rules)
    in_memory = profile_frame(changed, contract, "site", rules)
    both = profile_frame(pd.concat([changed, changed], ignore_index=True), contract, "site", rules)
    merged = merge_all([on_cluster, in_memory])
    assert merged.n_rows == both.n_rows == 1600
    ref = profile_frame(reference, contract, "site", rules)
    expected = score_profiles(ref, both, contract)
    _same_alerts(score_profiles(ref, merged, contract).alerts, expected.alerts)
    assert len(expected.alerts) >= 2  # the unit switch, the gap, and the batch's rows seen twice


def test_read_dask_refuses_another_feeds_files(tmp_path, contract):
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    from monitors.batches import BatchError

    with pytest.raises(BatchError, match="wrong columns for feed"):
        read_dask(str(tmp_path / "*.csv"), contract)
    with pytest.raises(BatchError, match="no files match"):
        read_dask(str(tmp_path / "none-*.csv"), contract)


def _monitor(tmp_path, reference, current: str, *extra: str):
    ref = tmp_path / "ref.csv"
    reference.to_csv(ref, index=False)
    out = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    args = ["monitor", "-r", str(ref), "-c", current, "-o", str(out), "--segment", "site", *extra]
    result = CliRunner().invoke(app, args)
    return result, (json.loads(out.read_text()) if out.exists() else None)


def test_monitor_cli_on_dask_writes_the_in_memory_report(dask_in_threads, tmp_path, parts, reference, changed):
    whole = tmp_path / "whole.parquet"
    changed.to_parquet(whole, index=False)
    memory, expected = _monitor(tmp_path, reference, str(whole))
    on_dask, got = _monitor(tmp_path, reference, parts, "--dask", "local:2")
    assert memory.exit_code == 0 and on_dask.exit_code == 0, on_dask.output
    assert expected["summary"] == {"critical": 2, "warning": 0, "info": 0}
    for key in ("rows", "segments", "tests", "summary", "segment_column", "feed"):
        assert got[key] == expected[key]
    strip = [{k: v for k, v in a.items() if k not in ("statistic", "details")} for a in expected["alerts"]]
    assert [{k: v for k, v in a.items() if k not in ("statistic", "details")} for a in got["alerts"]] == strip
    assert [a["statistic"] for a in got["alerts"]] == pytest.approx([a["statistic"] for a in expected["alerts"]])
    assert "2 workers" in on_dask.output


def test_monitor_cli_uses_the_configured_scheduler_for_a_glob(dask_in_threads, tmp_path, monkeypatch, parts, reference):
    from service.settings import get_settings

    monkeypatch.setenv("CROSSWALK_DASK_SCHEDULER", "local:2")
    get_settings.cache_clear()
    result, report = _monitor(tmp_path, reference, parts)
    assert result.exit_code == 0, result.output
    assert "connecting to Dask at local:2" in result.output and report["rows"]["current"] == 800


def test_monitor_cli_unreachable_scheduler_is_one_line_exit_2(tmp_path, monkeypatch, parts, reference):
    monkeypatch.setattr(service.cluster, "CONNECT_TIMEOUT", "0.5s")
    result, report = _monitor(tmp_path, reference, parts, "--dask", "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and report is None
    [line] = [x for x in result.output.splitlines() if "error" in x]
    assert "dask scheduler tcp://127.0.0.1:9: unreachable" in line and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("batch", "extra", "message"),
    [
        ("part-*.parquet", (), "is a glob: score it on a Dask cluster"),
        ("part-*.parquet", ("--dask", "nowhere"), "expected tcp://HOST:PORT or local:N"),
        ("part-*.parquet", ("--dask", "local:2", "--html", "r.html"), "drop --html"),
        ("none-*.parquet", ("--dask", "local:1"), "no files match"),
    ],
)
def test_monitor_cli_bad_dask_input_is_one_line_exit_2(
    dask_in_threads, tmp_path, parts, reference, batch, extra, message
):
    result, report = _monitor(tmp_path, reference, str(tmp_path / batch), *extra)
    assert result.exit_code == 2 and report is None, result.output
    assert message in result.output and "Traceback" not in result.output
