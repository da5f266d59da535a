"""`crosswalk fields ...`: output contract and one clear line for bad input."""

from __future__ import annotations

import csv
import sqlite3

import pytest
from typer.testing import CliRunner

import service.engine
from ingest.schema import SchemaError
from service.cli import app
from service.cli.app import UserError
from service.settings import get_settings


@pytest.fixture
def home(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_suggest_from_a_schema_csv_writes_ranked_rows(home, tmp_path):
    source = tmp_path / "schema.csv"
    source.write_text("table,column,description\npatients,pat_dob,Date of birth\nlabevents,valueuom,Unit\n")
    out = tmp_path / "out.csv"
    result = invoke(
        "fields", "suggest", "--source", str(source), "--target", "omop-cdm-5.4", "--top", "3", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["source_table", "source_column", "rank", "target_table", "target_column", "score"]
    assert len(rows) == 6 and [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    assert all(0 <= float(r["score"]) <= 1 for r in rows)


def test_suggest_from_a_database_with_evidence(home, tmp_path):
    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("CREATE TABLE lab (uom TEXT, result REAL)")
        db.execute("INSERT INTO lab VALUES ('mg/dL', 1.5)")
    out = tmp_path / "out.csv"
    result = invoke("fields", "suggest", "-s", f"sqlite:///{tmp_path / 'src.db'}", "-o", str(out), "--evidence")
    assert result.exit_code == 0, result.output
    header = next(csv.reader(out.open()))
    assert "evidence_table" in header and "evidence_values" in header


def test_custom_target_loads_and_is_used_by_name(home, tmp_path):
    target = tmp_path / "dwh.csv"
    target.write_text("table,column,description\nfact_lab,unit_code,Unit of measure\nfact_lab,result,Result value\n")
    assert invoke("fields", "target", "load", str(target), "--name", "dwh").exit_code == 0
    assert "dwh" in invoke("fields", "target", "list").output
    source = tmp_path / "src.csv"
    source.write_text("table,column\nlabs,uom\n")
    out = tmp_path / "out.csv"
    result = invoke("fields", "suggest", "-s", str(source), "-t", "dwh", "-o", str(out), "-k", "1")
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(out.open()))
    assert row["target_column"] == "unit_code"


def test_bad_inputs_are_one_line_and_write_nothing(home, tmp_path):
    out = tmp_path / "out.csv"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for args in (
        ["-s", str(empty)],
        ["-s", str(tmp_path / "missing.csv")],
        ["-s", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"],
        ["-s", str(empty), "-t", "no-such-target"],
    ):
        result = invoke("fields", "suggest", *args, "-o", str(out))
        assert result.exit_code != 0
        assert isinstance(result.exception, UserError | SchemaError), result.exception
        assert "\n" not in str(result.exception) and "hunter2" not in str(result.exception)
    assert not out.exists()


def test_console_exit_status_and_message_for_an_unreachable_database(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "CROSSWALK_HOME": str(tmp_path)}
    args = ["fields", "suggest", "-s", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x", "-o", str(tmp_path / "o.csv")]
    code = "from service.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("crosswalk: error: ")
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
