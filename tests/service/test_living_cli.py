"""The living-mapping CLI: `terminology update` on OMOP releases, `project reopened`,
`project update-source`, `dual agreement`, and `audit verify` afterwards."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from models.loaders import load_terminology
from service import crud, decisions
from service.cli import app as cli
from service.cli.app import UserError
from service.store.db import engine_for, session_scope
from service.store.tables import DecisionCreate
from tests.test_release_diff import concept, release


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert isinstance(result.exception, UserError), result.output  # main() prints it as one line, exit 2
    return str(result.exception)


def test_terminology_update_reopens_and_audit_verify_still_passes(env: Path):
    v1 = release(
        env / "v1",
        "v5 2024",
        [concept("1", "Diabetes mellitus"), concept("2", "Prediabetes"), concept("4", "Hypertension")],
    )
    v2 = release(
        env / "v2",
        "v5 2025",
        [
            concept("1", "Diabetes mellitus"),
            concept("2", "Prediabetes", standard="", invalid="U"),
            concept("4", "Hypertension"),
            concept("6", "Prediabetes (finding)"),
        ],
        ["2\t6\tConcept replaced by\t20250101\t20991231\t\n"],
    )
    assert "first release recorded" in run("terminology", "update", str(v1), "--format", "omop", "--name", "conditions")
    run("project", "create", "--name", "clinic", "--source-system", "clinic dx", "--target", "conditions")
    source = env / "codes.csv"
    source.write_text(
        "source_code,source_text,frequency\nPD,prediabetes,10\nDM,diabetes,20\nHT,high blood pressure,5\n"
    )
    run("project", "import", "-p", "clinic", str(source))
    first = load_terminology("omop", v1, "conditions")
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        project = crud.get_project(session, "clinic")
        for code, target in (("PD", "2"), ("DM", "1")):
            decision = DecisionCreate(action="remap", target_code=target)
            version = crud.get_item(session, project, code).version
            decisions.decide(session, project, code, decision, "ana", version, first)
        assert crud.get_item(session, project, "PD").terminology_version == "v5 2024"  # the release the store recorded

    out = run("terminology", "update", str(v2), "--format", "omop", "--name", "conditions")
    assert "conditions v5 2024 -> v5 2025: 1 added, 0 retired, 1 replaced, 0 renamed" in out
    assert "1 approved mapping(s) re-opened" in out
    assert (env / "terminologies" / "archive" / "conditions-v5-2024.jsonl.gz").exists()  # the old release is kept
    reopened = run("project", "reopened", "-p", "clinic")
    assert "PD" in reopened and "target 2 replaced: inactive (U)" in reopened and "suggested replacement: 6" in reopened

    source.write_text(
        "source_code,source_text,frequency\nPD,pre-diabetes,10\nDM,diabetes,25\nNEW,gestational diabetes,1\n"
    )
    out = run("project", "update-source", "-p", "clinic", str(source), "--no-resuggest")
    assert "new (1): NEW" in out and "removed (1): HT" in out and "text changed (1): PD" in out
    assert "1 decisions carried forward, 1 re-opened" in out
    assert "audit log intact" in run("audit", "verify")

    (env / "terminologies" / "conditions.jsonl.gz").unlink()  # the release in use is gone from the catalog
    result = CliRunner().invoke(cli, ["terminology", "update", str(v2), "--format", "omop", "--name", "conditions"])
    assert result.exit_code == 0 and "no copy of conditions v5 2025 in the catalog" in result.output
    assert "mappers / domain" in run("dual", "agreement", "-p", "clinic")


def test_bad_terminology_updates_are_one_line_errors(env: Path):
    assert "give --name" in refused("terminology", "update", "x")
    assert "built in" in refused("terminology", "update", "--format", "omop", "--name", "icd10cm", "x")
    assert "unknown format 'nope'" in refused("terminology", "update", "x", "--format", "nope", "--name", "t")
    assert "no such file" in refused("terminology", "update", str(env / "missing"), "--format", "omop", "--name", "t")
