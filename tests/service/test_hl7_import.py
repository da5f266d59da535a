"""Local codes from HL7 v2 and FHIR messages into a project's review items, with the messages behind them."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from service.cli import app as cli
from service.cli.app import UserError
from service.store.db import engine_for, session_scope
from service.store.messages import DeadLetter, ItemMessage, StoredMessage
from tests.service.hl7_feed import HL7_SAMPLES, lab_messages, oru


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(*args: str) -> str:
    """The one-line user error a command gives (`main` prints it and exits 2)."""
    result = CliRunner().invoke(cli, list(args))
    assert isinstance(result.exception, UserError), result.output
    return str(result.exception)


@pytest.fixture
def project(env):
    run("project", "create", "--name", "lis", "--source-system", "LIS", "--target", "icd10cm")
    return env


def _json() -> str:
    out = CliRunner().invoke(cli, ["project", "items", "-p", "lis", "--format", "json"])
    assert out.exit_code == 0, out.output
    return out.stdout


def test_import_samples_collects_local_codes_with_context_and_messages(project):
    files = [str(p) for p in sorted(HL7_SAMPLES.glob("*.hl7"))]
    out = run("project", "import", "-p", "lis", "--format", "hl7v2", *files)
    assert "read 11 messages (11 new to the store, 0 dead letters)" in out
    listed = {i["code"]: i for i in json.loads(_json())}
    assert listed and all(i["frequency"] >= 1 for i in listed.values())
    # each message type's own field: results OBX-3, orders OBR-4, diagnoses DG1-3 ...; the LOINC-coded
    # OBX-3s of the LAB-ORU samples are standard codes, never review items
    assert {i["context"]["field"] for i in listed.values()} >= {"OBX-3", "OBR-4"}
    assert not any(i["context"]["coding_system"] in ("LN", "LOINC") for i in listed.values())
    results = run("project", "import", "-p", "lis", "--format", "hl7v2", "--field", "OBX-3", *files)
    assert "0 new, 0 updated" in results
    some = next(iter(listed.values()))
    assert some["context"]["messages"] == "1" and some["context"]["message_control_ids"]

    again = run("project", "import", "-p", "lis", "--format", "hl7v2", *files)
    assert "0 new to the store" in again and "0 new, 0 updated" in again
    assert {i["code"]: i["frequency"] for i in json.loads(_json())} == {c: i["frequency"] for c, i in listed.items()}


def test_frequency_counts_each_message_once_and_grows_with_new_ones(project):
    first = project / "a.hl7"
    first.write_text("\r".join(lab_messages(3)))
    run("project", "import", "-p", "lis", "--format", "hl7v2", str(first))
    second = project / "b.hl7"
    second.write_text("\r".join(lab_messages(5)))  # L0..L2 again, and L3, L4 new
    out = run("project", "import", "-p", "lis", "--format", "hl7v2", str(second))
    assert "2 new to the store" in out and "2 updated" in out
    glucose = next(i for i in json.loads(_json()) if i["code"] == "GLU")
    assert glucose["frequency"] == 5 and glucose["context"]["messages"] == "5"
    assert glucose["context"]["units"].startswith("mg/dL") and "70-110" in glucose["context"]["reference_ranges"]
    assert glucose["context"]["value_types"] == "NM (5)" and glucose["context"]["numeric_range"]
    with session_scope(engine_for(f"sqlite:///{project / 'cli.db'}")) as session:
        assert len(session.exec(select(ItemMessage)).all()) == 10  # 2 codes x 5 messages, none twice
    table = run("project", "items", "-p", "lis")
    assert "GLU" in table and "Glucose fasting" in table
    assert run("project", "items", "-p", "lis", "--format", "csv").startswith(
        "code,text,frequency,status,confidence,context"
    )
    assert "choose table, csv or json" in refused("project", "items", "-p", "lis", "--format", "xml")


def test_codes_already_coded_by_the_sender_are_counted_and_left_out(project):
    path = project / "coded.hl7"
    path.write_text(oru("NM|GLU^Glucose^L^2345-7^Glucose SerPl-mCnc^LN||99|mg/dL", "NM|K^Potassium^L||4.1|mmol/L"))
    out = run("project", "import", "-p", "lis", "--format", "hl7v2", str(path))
    assert "already coded by the sender (left out): 1, e.g. GLU (LOINC 2345-7)" in out
    assert [i["code"] for i in json.loads(_json())] == ["K"]


def test_unreadable_messages_become_dead_letters_not_items(project):
    path = project / "mixed.hl7"
    path.write_bytes(("\r".join(lab_messages(1)) + "\rMSH|^~\\&|broken\rOBX|no header").encode())
    result = CliRunner().invoke(cli, ["project", "import", "-p", "lis", "--format", "hl7v2", str(path)])
    assert result.exit_code == 0, result.output
    assert "dead letter: mixed.hl7:" in result.output and "1 dead letters" in result.output
    with session_scope(engine_for(f"sqlite:///{project / 'cli.db'}")) as session:
        [dead] = session.exec(select(DeadLetter)).all()
        assert "mixed.hl7" in dead.reason and dead.origin == "file:mixed.hl7"
        assert len(session.exec(select(StoredMessage)).all()) == 1
    assert "no such file" in refused("project", "import", "-p", "lis", "--format", "hl7v2", str(project / "nope.hl7"))


def test_fhir_bundle_local_codings_become_items(project):
    bundle = {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "code": {
                        "coding": [
                            {"system": "http://hospital.example/lab", "code": "CRP", "display": "C-reactive protein"}
                        ]
                    },
                    "valueQuantity": {"value": 3 + i, "unit": "mg/L"},
                }
            }
            for i in range(3)
        ],
    }
    path = project / "bundle.json"
    path.write_text(json.dumps(bundle))
    out = run("project", "import", "-p", "lis", "--format", "fhir", str(path))
    assert "1 local codes: 1 new" in out
    [crp] = json.loads(_json())
    assert crp["code"] == "CRP" and crp["frequency"] == 3 and crp["context"]["messages"] == "1"


def test_api_import_of_hl7v2_and_the_messages_behind_an_item(sqlite_service):
    service = sqlite_service
    project = service.project()
    data = "\r".join(lab_messages(4)).encode()
    response = service.call(
        "POST", f"/projects/{project}/imports?format=hl7v2", "mapper", files={"file": ("feed.hl7", data, "text/plain")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] == 2 and body["messages"] == 4 and body["stored"] == 4 and body["already_coded"] == 0
    assert service.item(project, "GLU")["frequency"] == 4
    behind = service.call("GET", f"/projects/{project}/messages?code=GLU", "viewer")
    assert behind.status_code == 200, behind.text
    assert sorted(m["control_id"] for m in behind.json()) == ["L0", "L1", "L2", "L3"]
    assert service.call("GET", f"/projects/{project}/messages?code=NOPE", "viewer").status_code == 404
