"""HL7 v2 and FHIR over HTTP: POST /feeds/{feed}/messages answers with the ACK after storing the message."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from ingest.mllp import ack_code
from service.cli import app as cli
from service.store.db import session_scope
from service.store.feeds import Feed
from service.store.messages import StoredMessage
from tests.service.hl7_feed import lab_messages, make_feed

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


def test_http_ingestion_acks_stores_dead_letters_and_batches(sqlite_service, tmp_path):
    service = sqlite_service
    feed, _ = make_feed(service.engine, tmp_path)
    messages = lab_messages(3)
    for message in messages:
        response = service.call("POST", "/feeds/labs/messages", "ops", content=message, headers=ER7)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
        assert ack_code(response.content) == "AA" and b"MSA|AA|L" in response.content
    with session_scope(service.engine) as session:
        stored = session.exec(select(StoredMessage).order_by(StoredMessage.id)).all()
        assert [m.control_id for m in stored] == ["L0", "L1", "L2"] and {m.origin for m in stored} == {"http"}

    unreadable = b"MSH|^~\\&|LIS|NORTH LAB|CW|HOSP|20240105||ORU^R01|BAD1|P|2.5.1\rno segment"
    bad = service.call("POST", "/feeds/labs/messages", "ops", content=unreadable, headers=ER7)
    assert bad.status_code == 422 and ack_code(bad.content) == "AE"
    dead = service.call("GET", "/feeds/labs/dead-letters", "viewer").json()
    assert len(dead) == 1 and "segment" in dead[0]["reason"]
    assert "1 dead letter(s)" in CliRunner().invoke(cli, ["feed", "dead-letters", "labs"]).output

    wrong = service.call("POST", "/feeds/labs/messages", "ops", content=b"{}", headers={"Content-Type": "image/png"})
    assert wrong.status_code == 415
    assert service.call("POST", "/feeds/labs/messages", "viewer", content=messages[0], headers=ER7).status_code == 403

    again = service.call("POST", "/feeds/labs/messages?flush=true", "ops", content=messages[0], headers=ER7)
    assert ack_code(again.content) == "AA"  # a resend is acknowledged, and stored once
    behind = service.call("GET", "/feeds/labs/batches/1/messages", "viewer")
    assert behind.status_code == 200, behind.text
    assert [m["control_id"] for m in behind.json()] == ["L0", "L1", "L2"]
    assert service.call("GET", "/feeds/labs/batches/9/messages", "viewer").status_code == 404
    out = CliRunner().invoke(cli, ["feed", "batch-messages", "labs", "1"])
    assert out.exit_code == 0 and out.stdout.count("ORU^R01") == 3
    with session_scope(service.engine) as session:
        assert len(session.exec(select(StoredMessage)).all()) == 3
        assert session.get(Feed, feed.id) is not None


def test_http_fhir_bundle_is_stored_per_document(sqlite_service, tmp_path):
    service = sqlite_service
    make_feed(service.engine, tmp_path)
    bundle = {"resourceType": "Bundle", "id": "b7", "type": "collection", "entry": []}
    headers = {"Content-Type": "application/fhir+json"}
    response = service.call("POST", "/feeds/labs/messages", "ops", content=json.dumps(bundle), headers=headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["stored"]) == 1 and response.json()["dead_letters"] == []
    broken = service.call("POST", "/feeds/labs/messages", "ops", content=b'{"resourceType": 5}', headers=headers)
    assert broken.status_code == 422 and broken.json()["dead_letters"]
    with session_scope(service.engine) as session:
        [stored] = session.exec(select(StoredMessage)).all()
        assert stored.format == "fhir" and stored.message_type == "Bundle" and stored.control_id == "b7"
