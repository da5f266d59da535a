"""What a new user trips over in the first hour: a typo'd target, a project to fix, tokens to revoke,
a release that changes nothing, help that reads like a CLI's."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli import app as cli
from service.store.tables import Role
from tests.service.conftest import crosswalk


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def loaded(env, suggester):
    suggester.terminology.save(env / "terminologies" / "loinc.jsonl.gz")
    return env


def test_an_unknown_target_is_refused_at_creation_naming_the_loaded_ones(loaded, monkeypatch, capsys):
    code, _, err = crosswalk(
        monkeypatch, capsys, "project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "lonic"
    )
    assert code == 2 and "unknown terminology 'lonic'" in err and "loinc" in err and err.count("\n") == 1
    assert "project 1" in run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")


def test_the_api_refuses_an_unknown_target_too(sqlite_service):
    body = {"name": "x", "source_system": "LIS", "target_terminology": "lonic"}
    # the stand-in suggester serves any name, so the service's catalog is asked through it: use a real one
    sqlite_service.app.state.terminologies = __import__("service.engine", fromlist=["x"]).Terminologies(
        read=lambda name: None, names=lambda: ["icd10cm", "loinc"]
    )
    response = sqlite_service.call("POST", "/projects", Role.mapper, json=body)
    assert response.status_code == 422 and "loaded: icd10cm, loinc" in response.json()["detail"]


def test_a_project_can_be_renamed_and_retargeted_until_its_first_decision(sqlite_service):
    project = sqlite_service.ready_project()
    renamed = sqlite_service.call("PATCH", f"/projects/{project}", Role.mapper, json={"name": "St Mary lab 2"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "St Mary lab 2"
    moved = sqlite_service.call("PATCH", f"/projects/{project}", Role.mapper, json={"target_terminology": "icd10cm"})
    assert moved.status_code == 200 and moved.json()["target_terminology"] == "icd10cm"
    assert sqlite_service.decide(project, "GLU", action="approve").status_code == 200
    refused = sqlite_service.call("PATCH", f"/projects/{project}", Role.mapper, json={"target_terminology": "x"})
    assert refused.status_code == 409 and "before the first decision" in refused.json()["detail"]
    events = sqlite_service.call("GET", "/audit/events", Role.admin).json()
    assert {"project.rename", "project.set_target"} <= {e["action"] for e in events}


def test_cli_rename_set_target_and_token_revoke(loaded, monkeypatch, capsys):
    run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    assert "Lab -> Chem" in run("project", "rename", "-p", "Lab", "Chem")
    code, _, err = crosswalk(monkeypatch, capsys, "project", "set-target", "-p", "Chem", "nope")
    assert code == 2 and "unknown terminology 'nope'" in err
    run("token", "create", "--role", "viewer", "--name", "bob")
    assert "bob\tviewer\tactive" in run("token", "list")
    assert "revoked" in run("token", "revoke", "1")
    assert "bob\tviewer\trevoked" in run("token", "list")


def test_a_release_that_changes_nothing_is_refused(sqlite_service):
    project = sqlite_service.ready_project()
    sqlite_service.decide(project, "GLU", action="approve")
    assert sqlite_service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    again = sqlite_service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={})
    assert again.status_code == 409 and "nothing changed since release 1" in again.json()["detail"]


def test_help_names_values_and_the_version_is_one_flag_away(env, monkeypatch, capsys):
    code, out, _ = crosswalk(monkeypatch, capsys, "suggest", "--help")
    assert code == 0 and "<bool>" not in out and "--evidence " in out and "--input PATH" in out and "--top N" in out
    code, out, _ = crosswalk(monkeypatch, capsys, "--version")
    assert code == 0 and out.startswith("crosswalk ")
    code, out, _ = crosswalk(monkeypatch, capsys, "project", "suggest", "--help")
    assert "--top" in out  # the same flag name as `crosswalk suggest`
    code, out, _ = crosswalk(monkeypatch, capsys, "release", "diff", "--help")
    assert "Usage: crosswalk release diff [OPTIONS] BASE OTHER" in out and "{" not in out and "<int>" not in out


def test_without_a_terminal_the_index_build_says_what_it_does_and_how_long_it_took(
    loaded, suggester, monkeypatch, capsys
):
    from service.cli.common import serving_suggester

    monkeypatch.setattr("service.engine.get_suggester", lambda settings, name, progress: suggester)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    serving_suggester("loinc")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("crosswalk: loading loinc") and "search index" in lines[0]
    assert lines[1].startswith("crosswalk: loinc ready: 6 concepts,") and lines[1].endswith(" s")


EXCEL_CSV = "source_code,source_text\nGLU,Glucose sérum\n"


def test_one_reading_path_takes_an_encoding_or_a_byte_order_mark(loaded, sqlite_service, monkeypatch, capsys):
    cp1252 = loaded / "excel.csv"
    cp1252.write_bytes(EXCEL_CSV.encode("cp1252"))
    utf16 = loaded / "unicode.csv"
    utf16.write_bytes(EXCEL_CSV.encode("utf-16"))  # with its byte-order mark, as Excel's "Unicode" export
    run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    code, _, err = crosswalk(monkeypatch, capsys, "project", "import", "-p", "Lab", str(cp1252))
    assert code == 2 and "line 2" in err and "cp1252" in err
    assert "1 new" in run("project", "import", "-p", "Lab", str(cp1252), "--encoding", "cp1252")
    assert "1 unchanged" in run("project", "import", "-p", "Lab", str(utf16))
    project = sqlite_service.project()
    files = {"file": ("excel.csv", cp1252.read_bytes(), "text/csv")}
    refused = sqlite_service.call("POST", f"/projects/{project}/imports", Role.mapper, files=files)
    assert refused.status_code == 422 and "cp1252" in refused.json()["detail"]
    taken = sqlite_service.call("POST", f"/projects/{project}/imports?encoding=cp1252", Role.mapper, files=files)
    assert taken.status_code == 200 and taken.json()["created"] == 1
    assert sqlite_service.item(project, "GLU")["text"] == "Glucose sérum"


def test_a_filter_on_an_attribute_nobody_has_is_refused_before_any_index_is_built(loaded, monkeypatch, capsys):
    def no_build(*args, **kwargs):
        raise AssertionError("the index was built before the filter was checked")

    monkeypatch.setattr("service.engine.get_suggester", no_build)
    source = loaded / "codes.csv"
    source.write_text("source_code,source_text\nGLU,Glucose serum\n")
    args = ("suggest", "-t", "loinc", "-i", str(source), "-o", str(loaded / "out.csv"))
    code, _, err = crosswalk(monkeypatch, capsys, *args, "--where", "colour=red")
    assert code == 2 and "loinc has no attribute 'colour'" in err and "class" in err
    code, _, err = crosswalk(monkeypatch, capsys, *args, "--where", "class=NOPE")
    assert code == 2 and "no concept of loinc matches the filter {'class': 'NOPE'}" in err


def test_a_runaway_quote_names_the_line_it_starts_on(loaded, sqlite_service, monkeypatch, capsys):
    import csv

    source = loaded / "quote.csv"
    body = "x" * (csv.field_size_limit() + 10)
    source.write_text(f'source_code,source_text\nA,fine\nB,"unclosed {body}\nC,more\n')
    run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    code, _, err = crosswalk(monkeypatch, capsys, "project", "import", "-p", "Lab", str(source))
    assert code == 2 and "line 3:" in err and "closing quote" in err and "Error" not in err
    code, _, err = crosswalk(
        monkeypatch, capsys, "suggest", "-t", "loinc", "-i", str(source), "-o", str(loaded / "o.csv")
    )
    assert code == 2 and "line 3:" in err and "closing quote" in err


def test_serve_says_where_it_listens_logs_each_request_and_says_when_it_stops(env, monkeypatch, capsys):
    import json
    import logging

    from fastapi.testclient import TestClient

    monkeypatch.setenv("CROSSWALK_DATABASE_URL", "postgresql+psycopg://etl:s3cret@db.example/crosswalk")
    monkeypatch.setattr("service.store.db.upgrade", lambda engine: None)
    monkeypatch.setattr("service.web.app.load_serving_models", lambda app: {"loinc": "fake-words@1"})

    def fake_run(app, **kwargs):  # a request, as uvicorn would serve it, then shutdown
        TestClient(app).get("/health")

    monkeypatch.setattr("uvicorn.run", fake_run)
    logger = logging.getLogger("crosswalk")  # serve configures it: put it back for the tests after this one
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)
    code, _, err = crosswalk(monkeypatch, capsys, "serve", "--port", "8123")
    assert code == 0
    assert (
        "listening on http://127.0.0.1:8123 (review UI http://127.0.0.1:8123/ui/, API docs http://127.0.0.1:8123/docs)"
        in err
    )
    assert "postgresql+psycopg://etl:***@db.example/crosswalk" in err and "s3cret" not in err
    assert "GET /health 200" in err and err.rstrip().endswith("stopped")
    code, _, err = crosswalk(monkeypatch, capsys, "serve", "--log-json")
    lines = [json.loads(line) for line in err.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(lines[0]) and any(
        "GET /health 200" in e["message"] for e in lines
    )
    code, _, err = crosswalk(monkeypatch, capsys, "serve", "--log-level", "loud")
    assert code == 2 and "--log-level 'loud'" in err
