"""Lineage: from an alert, or a review item, back to the stored messages behind it (CLI and API)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from service.cli import app as cli
from service.store.db import session_scope
from service.store.feeds import FeedAlert
from tests.service.conftest import crosswalk
from tests.service.hl7_feed import lab_messages, make_feed

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.stdout


@pytest.fixture
def alerted(service, tmp_path):
    """A batch of 4 clean messages from NORTH LAB and 4 from SOUTH LAB, 3 of them with a flag outside HL7
    table 0078 (one with a terminal escape sequence in its text): a conformance alert for SOUTH LAB."""
    make_feed(service.engine, tmp_path)
    south = lab_messages(4, start=200, site="SOUTH LAB", flag="ZZ")
    south[0] = south[0].replace("Glucose fasting", "Glucose \x1b[31mfasting")
    south[3] = south[3].replace("|ZZ|", "|N|")  # from the site, but without the finding
    for n, message in enumerate(lab_messages(4) + south, start=1):
        response = service.call("POST", f"/feeds/labs/messages?flush={n == 8}", "ops", content=message, headers=ER7)
        assert response.status_code == 200, response.text
    with session_scope(service.engine) as session:
        alert = session.exec(select(FeedAlert).where(FeedAlert.check_name == "conformance")).one()
    assert alert.segment == "site=SOUTH LAB"
    return alert.uid


def test_an_alert_leads_back_to_its_batch_and_its_sites_messages(service, alerted):
    body = service.call("GET", f"/feeds/labs/alerts/{alerted}/lineage", "viewer").json()
    assert body["source"] == "alert" and body["batches"] == [1] and body["segment"] == "site=SOUTH LAB"
    assert [m["control_id"] for m in body["messages"]] == ["L200", "L201", "L202", "L203"]  # NORTH LAB's left out
    assert all(m["site"] == "SOUTH LAB" and m["batch_number"] == 1 for m in body["messages"])
    assert [m["flagged"] for m in body["messages"]] == [True, True, True, False]  # the finding's own messages
    assert body["total"] == 4 and body["messages"][0]["raw"] is None  # the API lists, never shows, messages
    assert service.call("GET", "/feeds/labs/alerts/nosuch/lineage", "viewer").status_code == 404

    table = run("lineage", "--alert", alerted)
    assert f"alert {alerted} (feed labs, segment site=SOUTH LAB, batches 1)" in table
    assert table.count("flagged") == 3 and "L203" in table and "L0 " not in table
    as_json = json.loads(run("lineage", "--alert", alerted, "--format", "json"))
    assert [m["sha256"] for m in as_json["messages"]] == [m["sha256"] for m in body["messages"]]


def test_show_message_prints_the_stored_message_with_control_characters_escaped(service, alerted):
    table = run("lineage", "--alert", alerted, "--show-message")
    assert "        MSH|^~\\&|LIS|SOUTH LAB|" in table and "        OBX|1|NM|GLU^Glucose \\x1b[31mfasting" in table
    assert "\x1b" not in table  # the sender's escape sequence never reaches the terminal
    rows = list(csv.DictReader(io.StringIO(run("lineage", "--alert", alerted, "--format", "csv", "--show-message"))))
    assert [r["control_id"] for r in rows] == ["L200", "L201", "L202", "L203"] and rows[0]["flagged"] == "True"
    assert rows[0]["message"].startswith("MSH|^~\\&|LIS|SOUTH LAB|") and "\\rPID|" in rows[0]["message"]
    raw = json.loads(run("lineage", "--alert", alerted, "--format", "json", "--show-message"))["messages"][0]["raw"]
    assert raw.startswith("MSH|") and "\rOBX|1|NM|GLU^Glucose \x1b[31mfasting" in raw  # JSON keeps it exact


def test_a_review_item_leads_back_to_the_messages_that_carried_its_code(service, alerted):
    table = run("lineage", "--project", "labs-codes", "--code", "NA")
    assert "item NA (project labs-codes)" in table and table.count("ORU^R01") == 8
    limited = json.loads(run("lineage", "-p", "labs-codes", "--code", "NA", "--format", "json", "--limit", "3"))
    assert limited["total"] == 8 and len(limited["messages"]) == 3 and limited["code"] == "NA"
    assert limited["messages"][0]["control_id"] == "L203"  # newest first


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--alert", "nosuch"], "no alert 'nosuch'"),
        (["--project", "labs-codes", "--code", "NOPE"], "has no source code 'NOPE'"),
        (["--project", "labs-codes"], "--project and --code go together"),
        ([], "give one of: a suggestion id, --alert UID, or --project and --code"),
        (["--alert", "nosuch", "--project", "labs-codes", "--code", "NA"], "give one of"),
        (["7", "--alert", "nosuch"], "give one of"),
        (["--alert", "nosuch", "--format", "xml"], "--format 'xml'"),
        (["7", "--format", "csv"], "a suggestion's lineage prints as table or json"),
    ],
)
def test_unknown_alerts_and_items_are_one_line_exit_2(sqlite_service, tmp_path, monkeypatch, capsys, args, phrase):
    make_feed(sqlite_service.engine, tmp_path)
    code, out, err = crosswalk(monkeypatch, capsys, "lineage", *args)
    assert code == 2 and phrase in err and err.count("\n") == 1 and "Traceback" not in err and out == ""
