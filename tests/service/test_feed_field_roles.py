"""A feed linked to a field-mapping project takes its columns' roles from the approved mappings: over inference,
under an explicitly set contract; linked, unlinked and refreshed through the audited feed path."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.fields.serving import as_terminology
from models.fields.targets import load_omop
from service import audit, crud, decisions
from service.cli import app as cli
from service.crud_imports import ImportRow, import_items
from service.store.db import engine_for, session_scope, upgrade
from service.store.tables import DecisionCreate, ProjectCreate, Role
from tests.monitors.test_monitor_field_roles import MAPPED, lab_extract
from tests.service.conftest import crosswalk
from tests.service.test_feeds import Feeds

OMOP = as_terminology(load_omop("5.4"))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def fields_project(engine, approved: dict[str, str], name: str = "LIS fields") -> int:
    """A field-mapping project over the LAB extract's columns, `approved` remapped by mapper-1."""
    with session_scope(engine) as session:
        data = ProjectCreate(name=name, source_system="LIS extract", target_terminology="omop-cdm-5.4")
        project = crud.create_project(session, data, "admin-1")
        rows = [ImportRow(f"LAB.{c}", c, None, {"table": "LAB", "column": c}) for c in MAPPED]
        import_items(session, project, rows, "mapper-1")
        for column, target in approved.items():
            decide(session, project, column, "remap", target)
        return project.id


def decide(session, project, column: str, action: str, target: str | None = None) -> None:
    code = f"LAB.{column}"
    version = crud.get_item(session, project, code).version
    decisions.decide(
        session, project, code, DecisionCreate(action=action, target_code=target), "mapper-1", version, OMOP
    )


def unit_changes(batch: dict) -> list[tuple[str, str]]:
    return [(a["column"], a["segment"]) for a in batch["alerts"] if a["check"] == "unit_change"]


def create(feeds: Feeds, **form) -> dict:
    files = {"file": ("reference.csv", csv_bytes(lab_extract(1500, 1)))}
    response = feeds.call("POST", "/feeds", data={"name": "lis", **form}, files=files)
    assert response.status_code == 201, response.text
    return response.json()


def contract(feeds: Feeds, feed: int) -> dict:
    response = feeds.call("GET", f"/feeds/{feed}/contract", Role.viewer)
    assert response.status_code == 200, response.text
    return response.json()


def kinds(feeds: Feeds, feed: int) -> dict[str, str]:
    return {c["name"]: c["kind"] for c in contract(feeds, feed)["columns"]}


def patch(feeds: Feeds, feed: dict, body: dict, expect: int = 200) -> dict:
    headers = {"If-Match": f'"{feed["version"]}"'}
    response = feeds.call("PATCH", f"/feeds/{feed['id']}", json=body, headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


def test_a_linked_feed_takes_roles_from_approved_mappings_and_catches_the_unit_change(sqlite_service):
    feeds = Feeds(sqlite_service)
    project = fields_project(sqlite_service.engine, MAPPED)
    feed = create(feeds, fields_project_id=project)
    assert feed["fields_project_id"] == project and feed["contract_set_by"] is None
    assert sorted(feed["field_roles"]["roles"]) == sorted(MAPPED)
    shown = contract(feeds, feed["id"])
    reasons = {c["name"]: c["reason"] for c in shown["columns"]}
    assert reasons["UOM"] == "approved field mapping LAB.UOM -> measurement.unit_source_value, by mapper-1"
    assert (shown["patient_column"], shown["segment_columns"]) == ("PAT", ["LOC"])
    assert [(p["value"], p["unit"], p["code"]) for p in shown["value_unit_pairs"]] == [("RESULT_TXT", "UOM", "TST")]

    assert feeds.post(feed["id"], csv_bytes(lab_extract(900, 5)))["alerts"] == []
    assert unit_changes(feeds.post(feed["id"], csv_bytes(lab_extract(900, 3, glucose_in_mmol=True)))) == [
        ("UOM[GLU]", "B")
    ]
    feeds.verify_audit()


def test_linking_later_re_infers_and_a_mapping_no_longer_approved_stops_counting(sqlite_service):
    feeds = Feeds(sqlite_service)
    feed = create(feeds)
    assert kinds(feeds, feed["id"])["UOM"] == "categorical"  # local unit codes: not recognisable as units
    switched = csv_bytes(lab_extract(900, 3, glucose_in_mmol=True))
    assert unit_changes(feeds.post(feed["id"], switched)) == []

    project = fields_project(sqlite_service.engine, MAPPED)
    codes = sqlite_service.project()  # maps codes to a terminology: no column roles
    patch(feeds, feed, {"fields_project_id": codes}, expect=422)
    linked = patch(feeds, feed, {"fields_project_id": project})
    assert linked["version"] == feed["version"] + 1 and kinds(feeds, feed["id"])["UOM"] == "unit"
    assert unit_changes(feeds.post(feed["id"], switched)) == [("UOM[GLU]", "B")]

    with session_scope(sqlite_service.engine) as session:
        decide(session, crud.get_project(session, project), "UOM", "flag")  # re-opened: no longer approved
    feeds.post(feed["id"], csv_bytes(lab_extract(900, 5)))  # the next batch sees the contract refreshed
    assert kinds(feeds, feed["id"])["UOM"] == "categorical"
    assert "UOM" not in feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()["field_roles"]["roles"]
    unlinked = patch(feeds, feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json(), {"fields_project_id": None})
    assert unlinked["fields_project_id"] is None and unlinked["field_roles"]["roles"] == {}
    actions = [e["action"] for e in feeds.call("GET", "/audit/events?entity=feed:1").json()]
    assert actions.count("feed.update") == 2 and "feed.contract" in actions
    feeds.verify_audit()


def test_an_explicit_contract_wins_over_approved_mappings_until_inferred_again(sqlite_service):
    feeds = Feeds(sqlite_service)
    project = fields_project(sqlite_service.engine, {k: v for k, v in MAPPED.items() if k != "UOM"})
    feed = create(feeds, fields_project_id=project)
    edited = contract(feeds, feed["id"]) | {"segment_columns": []}  # an operator's edit: no split by site
    wrong = feeds.call("PUT", f"/feeds/{feed['id']}/contract", json=edited | {"patient_column": "NOPE"})
    assert wrong.status_code == 422 and "patient_column" in wrong.text
    response = feeds.call("PUT", f"/feeds/{feed['id']}/contract", json=edited, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    assert feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()["contract_set_by"] == "ops-1"

    with session_scope(sqlite_service.engine) as session:
        decide(session, crud.get_project(session, project), "UOM", "remap", MAPPED["UOM"])
    feeds.post(feed["id"], csv_bytes(lab_extract(900, 5)))
    assert kinds(feeds, feed["id"])["UOM"] == "categorical"  # the explicit contract is not re-inferred
    assert contract(feeds, feed["id"])["segment_columns"] == []

    current = feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()
    inferred = patch(feeds, current, {"infer_contract": True})
    assert inferred["contract_set_by"] is None and kinds(feeds, feed["id"])["UOM"] == "unit"
    feeds.verify_audit()


# ---- the CLI ------------------------------------------------------------------------------------------------------


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def lab_files(env):
    engine = engine_for(f"sqlite:///{env / 'cli.db'}")
    upgrade(engine)
    fields_project(engine, MAPPED)
    lab_extract(1500, 1).to_csv(env / "reference.csv", index=False)
    lab_extract(900, 3, glucose_in_mmol=True).to_csv(env / "switched.csv", index=False)
    return env


def test_cli_monitor_and_feeds_use_a_field_project(lab_files):
    home = lab_files
    files = ["--reference", str(home / "reference.csv"), "--current", str(home / "switched.csv")]
    out = run(
        "monitor", *files, "--output", str(home / "report.json"), "--fields-project", "LIS fields", "--explain-contract"
    )
    assert "with the approved field mappings of project LIS fields" in out
    assert "UOM                              unit         approved field mapping LAB.UOM -> " in out
    assert "patients: PAT" in out
    assert [a["column"] for a in json.loads((home / "report.json").read_text())["alerts"]] == ["UOM[GLU]"]
    plain = run("monitor", *files, "--output", str(home / "plain.json"))
    assert "unit_change" not in plain

    assert "5 column role(s) from approved field mappings" in run(
        "feed", "create", "lis", "--reference", str(home / "reference.csv"), "--fields-project", "LIS fields"
    )
    explained = run("feed", "contract", "lis", "--explain")
    assert "contract (inferred)" in explained and "by mapper-1" in explained
    assert "opened" in run("feed", "post", "lis", str(home / "switched.csv"))
    assert "0 column role(s)" in run("feed", "set", "lis", "--no-fields-project")
    assert "UOM                              categorical" in run("feed", "contract", "lis", "--explain")
    with session_scope(engine_for(f"sqlite:///{home / 'cli.db'}")) as session:
        assert audit.verify(session).ok


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["monitor", "-r", "{home}/reference.csv", "-c", "{home}/switched.csv", "-o", "{home}/o.json",
          "--fields-project", "nope"], "no project 'nope'"),
        (["feed", "set", "lis"], "nothing to set"),
    ],
)  # fmt: skip
def test_cli_field_project_errors_are_one_line_exit_2(lab_files, monkeypatch, capsys, args, phrase):
    run("feed", "create", "lis", "--reference", str(lab_files / "reference.csv"))
    code, _, err = crosswalk(monkeypatch, capsys, *(a.format(home=lab_files) for a in args))
    assert code == 2 and phrase in err and err.count("\n") == 1, err
