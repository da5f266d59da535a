"""The `crosswalk` command-line contract: outputs, and one clear line for every bad input."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import service.engine
from service.cli import app
from service.settings import get_settings
from tests.conftest import SAMPLES

FHIR_SAMPLE = SAMPLES / "terminologies" / "fhir" / "codesystem-lab-local.json"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    service.engine.served_suggesters.cache_clear()
    yield tmp_path / "home"
    service.engine.served_suggesters.cache_clear()


@pytest.fixture
def fake_encoder(monkeypatch, encoder):
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    return encoder


def run_cli(*args: str, env_home) -> subprocess.CompletedProcess:
    """The real console entry point in a child process: what a user's shell sees."""
    env = {**os.environ, "CROSSWALK_HOME": str(env_home)}
    code = "from service.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_suggest_writes_ranked_candidates(home, fake_encoder, tmp_path, tiny_icd):
    tiny_icd.name = "tiny"
    tiny_icd.save(home / "terminologies" / "tiny.jsonl.gz")
    source = write(
        tmp_path / "in.csv", "source_code,source_text,unit\n250.00,Type 2 diabetes,\n401.9,Hypertension NOS,\n"
    )
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["suggest", "-t", "tiny", "-i", str(source), "-o", str(out), "--top", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["source_code", "rank", "target_code", "target_display", "score"]
    assert [r["rank"] for r in rows] == ["1", "2", "3"] * 2
    assert rows[3]["source_code"] == "401.9" and rows[3]["target_code"] == "I10"
    assert rows[3]["target_display"] == "Essential (primary) hypertension"
    assert float(rows[0]["score"]) >= float(rows[1]["score"])


def test_suggest_where_filter_and_evidence(home, fake_encoder, tmp_path, tiny_icd):
    tiny_icd.name = "tiny"
    tiny_icd.save(home / "terminologies" / "tiny.jsonl.gz")
    source = write(tmp_path / "in.csv", "source_code,source_text\n250,Type 2 diabetes mellitus\n")
    out = tmp_path / "out.csv"
    args = ["suggest", "-t", "tiny", "-i", str(source), "-o", str(out), "--where", "billable=true", "--evidence"]
    assert CliRunner().invoke(app, args).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert "E11" not in {r["target_code"] for r in rows}
    assert {"lexical", "semantic", "matched_text"} <= set(rows[0])


def test_terminology_load_then_list(home):
    result = CliRunner().invoke(
        app, ["terminology", "load", "--format", "fhir", str(FHIR_SAMPLE), "--name", "lab-local"]
    )
    assert result.exit_code == 0, result.output
    assert "loaded lab-local" in result.output
    listing = CliRunner().invoke(app, ["terminology", "list"]).output
    line = next(line for line in listing.splitlines() if line.startswith("lab-local"))
    assert "fhir" in line
    assert "icd10cm" in listing  # built in, listed before it is ever loaded


BAD_INPUTS = {
    "missing column": ("code,text\n1,x\n", "utf-8", "missing column(s) source_code, source_text"),
    "empty file": ("", "utf-8", "the file is empty"),
    "header only": ("source_code,source_text\n", "utf-8", "a header but no rows"),
    "wrong encoding": ("source_code,source_text\n1,Ménière disease\n", "latin-1", "line 2: not valid UTF-8 text"),
    "ragged row": ("source_code,source_text\n1,a,extra\n", "utf-8", "line 2: 3 fields, the header has 2"),
    "empty text": ("source_code,source_text\n1,\n", "utf-8", "line 2: source_text is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_non_zero(case, tmp_path):
    text, encoding, message = BAD_INPUTS[case]
    source = write(tmp_path / "in.csv", text, encoding)
    result = run_cli("suggest", "-i", str(source), "-o", str(tmp_path / "out.csv"), env_home=tmp_path / "home")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


def test_unknown_terminology_lists_what_is_available(tmp_path):
    source = write(tmp_path / "in.csv", "source_code,source_text\n1,asthma\n")
    result = run_cli("suggest", "-t", "snomed-ct", "-i", str(source), "-o", str(tmp_path / "o.csv"), env_home=tmp_path)
    assert result.returncode == 2
    assert "unknown terminology 'snomed-ct'; available: icd10cm" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_input_file(tmp_path):
    result = run_cli("suggest", "-i", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv"), env_home=tmp_path)
    assert result.returncode == 2 and "nope.csv: no such file" in result.stderr


def test_malformed_release_file_names_file_and_line(tmp_path):
    bad = write(tmp_path / "codesystem.json", '{"resourceType": "CodeSystem",\n  "concept": [\n')
    result = run_cli("terminology", "load", "--format", "fhir", str(bad), "--name", "x", env_home=tmp_path)
    assert result.returncode == 2
    assert "codesystem.json, line" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_format_and_bad_name(tmp_path):
    result = run_cli("terminology", "load", "--format", "csv", str(FHIR_SAMPLE), "--name", "x", env_home=tmp_path)
    assert result.returncode == 2 and "unknown format 'csv'; choose one of: loinc" in result.stderr
    result = run_cli("terminology", "load", "--format", "fhir", str(FHIR_SAMPLE), "--name", "../x", env_home=tmp_path)
    assert result.returncode == 2 and "invalid terminology name" in result.stderr


def test_missing_output_folder_is_reported_before_any_work(tmp_path):
    source = write(tmp_path / "in.csv", "source_code,source_text\n1,asthma\n")
    result = run_cli("suggest", "-i", str(source), "-o", str(tmp_path / "no" / "o.csv"), env_home=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "cache").exists()  # no index was built


def test_bad_where_clause(tmp_path):
    source = write(tmp_path / "in.csv", "source_code,source_text\n1,asthma\n")
    result = run_cli(
        "suggest", "-i", str(source), "-o", str(tmp_path / "o.csv"), "--where", "billable", env_home=tmp_path
    )
    assert result.returncode == 2 and "expected ATTRIBUTE=VALUE" in result.stderr
