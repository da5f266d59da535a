"""The review CLI on the embedded store, and the demo's review part (with the fake suggester)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service import crud, decisions
from service.cli import app as cli
from service.demo import run_review_demo
from service.settings import Settings
from service.store.db import engine_for, session_scope
from service.store.tables import DecisionCreate


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_token_create_prints_the_token_once(env):
    out = run("token", "create", "--role", "admin", "--name", "alice")
    token = out.strip().splitlines()[-1]
    assert token.startswith("cw_")
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        stored = crud.token_for(session, token)
        assert stored.name == "alice" and stored.role == "admin" and stored.token_hash != token


def test_project_release_cycle(env, suggester, monkeypatch):
    suggester.terminology.save(env / "terminologies" / "loinc.jsonl.gz")  # a loaded target
    source = env / "codes.csv"
    source.write_text("source_code,source_text,frequency\nGLU,Glucose serum,9\nNA,Sodium serum,8\n")
    assert "project 1" in run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    assert "2 new" in run("project", "import", "--project", "Lab", str(source))
    monkeypatch.setattr("service.cli.projects.serving_suggester", lambda name: suggester)
    assert "fake-words@1" in run("project", "suggest", "--project", "Lab")
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        project = crud.get_project(session, "Lab")
        for code in ("GLU", "NA"):
            item = crud.get_item(session, project, code)
            decisions.decide(
                session, project, code, DecisionCreate(action="approve"), "rev", item.version, suggester.terminology
            )
    assert "release 1: 2 mappings" in run("release", "create", "--project", "Lab")
    assert "suggested=0" not in run("project", "list") and "approved=2" in run("project", "list")
    out = env / "cm.json"
    run("release", "export", "--project", "1", "--release", "1", "--format", "fhir-r5", "--output", str(out))
    assert json.loads(out.read_text())["resourceType"] == "ConceptMap"
    assert "SRC:GLU" in run("release", "export", "-p", "Lab", "-r", "1", "-f", "sssom")
    assert "0 added, 0 removed, 0 changed" in run("release", "diff", "--project", "Lab", "1", "1")
    assert "decision.approve" in run("audit", "log", "--project", "Lab", "--item", "GLU")
    assert "intact" in run("audit", "verify")


def test_project_items_mark_the_items_with_no_confident_match(env, suggester, monkeypatch):
    suggester.terminology.save(env / "terminologies" / "loinc.jsonl.gz")  # a loaded target
    source = env / "codes.csv"
    source.write_text("source_code,source_text,frequency\nGLU,Glucose serum,9\nUA,Urinalysis dipstick,8\n")
    run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    run("project", "import", "--project", "Lab", str(source))

    def items(*args: str):
        return CliRunner().invoke(cli, ["project", "items", "-p", "Lab", *args])

    assert {i["confidence"] for i in json.loads(items("--format", "json").stdout)} == {None}  # not suggested yet
    monkeypatch.setattr("service.cli.projects.serving_suggester", lambda name: suggester)
    run("project", "suggest", "--project", "Lab")
    listed = {i["code"]: i["confidence"] for i in json.loads(items("--format", "json").stdout)}
    assert listed == {"GLU": "confident", "UA": "weak"}  # no word of "Urinalysis dipstick" in a concept name
    table = items()
    row = next(line for line in table.stdout.splitlines() if line.startswith("UA "))
    assert " weak " in row and "1 with no confident match" in table.stderr
    assert [i["code"] for i in json.loads(items("--confidence", "weak", "--format", "json").stdout)] == ["UA"]
    assert "UA,Urinalysis dipstick,8,suggested,weak," in items("--format", "csv").stdout
    assert "choose weak or confident" in str(items("--confidence", "shaky").exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["project", "import", "--project", "Nope", "/dev/null/x"], "no such file"),
        (["release", "create", "--project", "Nope"], "no project 'Nope'"),
        (["token", "create", "--role", "root", "--name", "x"], "--role 'root'"),
        (["release", "export", "-p", "1", "-r", "1", "-f", "pdf"], "--format 'pdf'"),
    ],
)
def test_user_errors_are_one_line_exit_2(env, monkeypatch, capsys, args, message):
    from service.cli.app import main

    monkeypatch.setattr("sys.argv", ["crosswalk", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_db_upgrade(env):
    assert "latest schema" in run("db", "upgrade")


def test_review_demo(env, suggester):
    settings = Settings(home=env)
    summary = run_review_demo(settings, suggester)
    assert summary["items"] == 30 and summary["suggested"] == 30  # data/samples/legacy_icd9_diagnoses.csv
    # The fake ranks lab codes: none agrees with the GEM, so nothing is approved or released.
    assert summary["approved"] == [] and len(summary["queued"]) == 30 and summary["release"] is None
    again = run_review_demo(settings, suggester)  # re-runnable: reuses the project
    assert again["project_id"] == summary["project_id"] and again["approved"] == []
