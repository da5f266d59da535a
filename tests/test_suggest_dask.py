"""`crosswalk suggest --dask`: the source list spread over a cluster's workers gives the single-process
output, row for row. A 2-worker LocalCluster of threads and the hashing stand-in encoder keep it fast."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import service.cluster
import service.engine
from service.cli import app
from service.cli.app import UserError
from service.settings import get_settings


@pytest.fixture
def home(tmp_path, monkeypatch, encoder, tiny_icd, dask_in_threads):
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    get_settings.cache_clear()
    service.engine.served_suggesters.cache_clear()
    tiny_icd.name = "tiny"
    tiny_icd.save(tmp_path / "home" / "terminologies" / "tiny.jsonl.gz")
    yield tmp_path / "home"
    service.engine.served_suggesters.cache_clear()


TEXTS = ["Type 2 diabetes", "Hypertension NOS", "pneumonia", "urinary tract infection", "lung cancer", "fever"]


@pytest.fixture
def source(tmp_path):
    """150 items: several tasks of the (shrunk) task size, the last one short."""
    lines = [f"C{i:03d},{TEXTS[i % len(TEXTS)]} {'' if i % 4 else 'unspecified'}".strip() for i in range(150)]
    path = tmp_path / "in.csv"
    path.write_text("source_code,source_text\n" + "\n".join(lines) + "\n")
    return path


def _suggest(source, out, *extra):
    return CliRunner().invoke(app, ["suggest", "-t", "tiny", "-i", str(source), "-o", str(out), "-k", "3", *extra])


def test_suggest_on_dask_writes_the_single_process_output(home, source, tmp_path, monkeypatch):
    monkeypatch.setattr(service.cluster, "ITEMS_PER_TASK", 64)
    alone = _suggest(source, tmp_path / "alone.csv", "--evidence")
    spread = _suggest(source, tmp_path / "spread.csv", "--evidence", "--dask", "local:2")
    assert alone.exit_code == 0 and spread.exit_code == 0, spread.output
    written = (tmp_path / "spread.csv").read_text()
    assert written == (tmp_path / "alone.csv").read_text()
    codes = [line.split(",")[0] for line in written.splitlines()[1:]]
    assert codes == [f"C{i:03d}" for i in range(150) for _ in range(3)]  # input order, 3 candidates each
    assert "2 workers" in spread.output


def test_each_worker_builds_its_suggester_once(home, source, tmp_path, monkeypatch, encoder):
    monkeypatch.setattr(service.cluster, "ITEMS_PER_TASK", 64)
    built = []
    build = service.engine.build_suggester
    monkeypatch.setattr(service.engine, "build_suggester", lambda *a: built.append(a[1]) or build(*a))
    assert _suggest(source, tmp_path / "out.csv", "--dask", "local:2").exit_code == 0
    assert built == ["tiny"]  # threads of one process share its cache: one build for three tasks


def test_suggest_on_an_unreachable_scheduler_says_so(home, source, tmp_path, monkeypatch):
    monkeypatch.setattr(service.cluster, "CONNECT_TIMEOUT", "0.5s")
    result = _suggest(source, tmp_path / "out.csv", "--dask", "tcp://127.0.0.1:9")
    assert isinstance(result.exception, UserError)
    assert "dask scheduler tcp://127.0.0.1:9: unreachable" in str(result.exception)
    assert not (tmp_path / "out.csv").exists()


def test_unknown_terminology_on_dask_is_a_user_error(home, source, tmp_path):
    result = CliRunner().invoke(
        app, ["suggest", "-t", "nope", "-i", str(source), "-o", str(tmp_path / "o.csv"), "--dask", "local:1"]
    )
    assert isinstance(result.exception, UserError) and "unknown terminology 'nope'" in str(result.exception)
