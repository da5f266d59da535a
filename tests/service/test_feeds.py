"""Monitored feeds through the API, on both store backends: register, post clean and drifted batches,
one alert per problem across batches, acknowledge/resolve, signed webhooks from the outbox with a receiver
that fails twice, Evidently drill-down, bad uploads refused with nothing changed, the audit chain intact."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitors.webhooks import SIGNATURE_HEADER, verify
from service.api.routes import feeds as feed_routes
from service.store.tables import Role
from tests.conftest import SAMPLES
from tests.service.conftest import WEBHOOK_SECRET as SECRET

MONITORING = SAMPLES / "monitoring"
WEIGHT = "29463-7"


@pytest.fixture(scope="module")
def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random split of the Synthea sample: two halves of one distribution, so clean is quiet."""
    frame = pd.read_csv(MONITORING / "measurements.csv")
    order = np.random.default_rng(0).permutation(len(frame))
    return frame.iloc[order[:800]].reset_index(drop=True), frame.iloc[order[800:]].reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def unit_switch(frame: pd.DataFrame, site: str = "south") -> pd.DataFrame:
    """Site `site` starts sending body weight in pounds."""
    frame = frame.copy()
    rows = (frame.measurement_source_value == WEIGHT) & (frame.site == site)
    frame.loc[rows, "value_as_number"] *= 2.2046
    frame.loc[rows, "unit_source_value"] = "[lb_av]"
    return frame


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first `failures` POSTs, then 204."""

    def __init__(self, failures: int = 0, port: int = 0) -> None:
        self.failures, self.attempts, self.accepted = failures, 0, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                ok = receiver.attempts > receiver.failures
                if ok:
                    receiver.accepted.append((body, dict(self.headers)))
                self.send_response(204 if ok else 500)
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Feeds:
    """The feed calls of one test, as the ops role."""

    def __init__(self, service) -> None:
        self.service = service

    def call(self, method: str, path: str, role: Role = Role.ops, **kwargs):
        return self.service.call(method, path, role, **kwargs)

    def create(self, reference: bytes, name: str = "labs", filename: str = "reference.csv", **form) -> dict:
        data = {"name": name, "segment_columns": ["site"], **form}
        response = self.call("POST", "/feeds", data=data, files={"file": (filename, reference)})
        assert response.status_code == 201, response.text
        return response.json()

    def post(self, feed: int, data: bytes, filename: str = "batch.csv", expect: int = 201):
        response = self.call("POST", f"/feeds/{feed}/batches", files={"file": (filename, data)})
        assert response.status_code == expect, response.text
        return response.json()

    def alerts(self, feed: int, **params) -> dict:
        response = self.call("GET", f"/feeds/{feed}/alerts", Role.viewer, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def verify_audit(self) -> None:
        result = self.call("GET", "/audit/verify").json()
        assert result["ok"], result["problems"]

    def audit_count(self) -> int:
        return self.call("GET", "/audit/verify").json()["events"]


@pytest.fixture
def feeds(service) -> Feeds:
    return Feeds(service)


def test_register_post_dedup_acknowledge_resolve(feeds, halves):
    reference, current = halves
    feed = feeds.create(csv_bytes(reference))
    assert feed["segment_columns"] == ["site"] and feed["reference_rows"] == 800
    contract = feeds.call("GET", f"/feeds/{feed['id']}/contract", Role.viewer).json()
    assert {"measurement_source_value", "value_as_number", "unit_source_value"} <= {
        c["name"] for c in contract["columns"]
    }

    clean = feeds.post(feed["id"], csv_bytes(current))
    assert clean["number"] == 1 and clean["alerts"] == [] and clean["summary"]["alerts"]["critical"] == 0
    assert feeds.alerts(feed["id"])["total"] == 0

    drifted = feeds.post(feed["id"], csv_bytes(unit_switch(current)))
    [line] = drifted["alerts"]
    assert (line["event"], line["check"], line["segment"], line["severity"]) == (
        "opened",
        "unit_change",
        "south",
        "critical",
    )
    assert "lb_av" in line["message"]

    again = feeds.post(feed["id"], csv_bytes(unit_switch(current)))  # the same problem next batch: no new alert
    assert [(a["uid"], a["event"]) for a in again["alerts"]] == [(line["uid"], "updated")]
    page = feeds.alerts(feed["id"])
    assert page["total"] == 1
    [alert] = page["alerts"]
    assert (
        alert["uid"] == line["uid"]
        and alert["occurrences"] == 2
        and alert["first_batch"] == "2"
        and alert["last_batch"] == "3"
    )

    assert feeds.alerts(feed["id"], status="open", severity="critical", segment="south")["total"] == 1
    assert feeds.alerts(feed["id"], segment="north")["total"] == 0
    assert feeds.alerts(feed["id"], severity="info")["total"] == 0
    assert feeds.call("GET", f"/feeds/{feed['id']}/alerts", params={"status": "closed"}).status_code == 422

    ack = f"/feeds/{feed['id']}/alerts/{alert['uid']}/acknowledge"
    assert feeds.call("POST", ack, Role.viewer).status_code == 403
    acked = feeds.call("POST", ack).json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "ops-1"
    assert feeds.call("POST", ack).status_code == 409
    still = feeds.post(feed["id"], csv_bytes(unit_switch(current)))  # acknowledged alerts keep being updated
    assert still["alerts"][0]["uid"] == alert["uid"] and feeds.alerts(feed["id"], status="acknowledged")["total"] == 1

    resolve = f"/feeds/{feed['id']}/alerts/{alert['uid']}/resolve"
    resolved = feeds.call("POST", resolve).json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "ops-1"
    assert feeds.call("POST", resolve).status_code == 409
    reopened = feeds.post(feed["id"], csv_bytes(unit_switch(current)))  # still broken at the source: a new alert
    assert reopened["alerts"][0]["event"] == "opened" and reopened["alerts"][0]["uid"] != alert["uid"]
    assert feeds.alerts(feed["id"], status="active")["total"] == 1

    fixed = feeds.post(feed["id"], csv_bytes(current))  # a clean batch resolves what it no longer shows
    assert fixed["summary"]["resolved"] == [reopened["alerts"][0]["uid"]]
    assert feeds.alerts(feed["id"], status="active")["total"] == 0
    listed = feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()
    assert listed["batches"] == 6 and listed["active_alerts"] == {}
    feeds.verify_audit()


def test_evidently_report_and_window_from_kept_profiles(feeds, halves):
    reference, current = halves
    feed = feeds.create(csv_bytes(reference), name="st-mary-labs")
    batch = feeds.post(feed["id"], csv_bytes(unit_switch(current)))
    assert batch["has_report"] is True
    html = feeds.call("GET", f"/feeds/st-mary-labs/batches/{batch['number']}/report", Role.viewer)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "value_as_number" in html.text and html.headers["content-security-policy"] == "sandbox allow-scripts"
    assert feeds.call("GET", f"/feeds/{feed['id']}/batches/9/report", Role.viewer).status_code == 404

    feeds.post(feed["id"], csv_bytes(current))
    window = feeds.call("GET", f"/feeds/{feed['id']}/window", Role.viewer, params={"first": 1, "last": 2}).json()
    assert window["batches"] == [1, 2] and window["rows"]["current"] == 2 * len(current)
    assert [b["number"] for b in feeds.call("GET", f"/feeds/{feed['id']}/batches", Role.viewer).json()] == [2, 1]


def test_webhook_receiver_failing_twice_gets_one_signed_delivery(feeds, halves, service, local_webhooks):
    reference, current = halves
    feed = feeds.create(csv_bytes(reference))
    receiver = Receiver(failures=2)
    try:
        hook = {"url": receiver.url, "secret": SECRET, "base_delay": 0.05}
        assert feeds.call("POST", f"/feeds/{feed['id']}/webhooks", json=hook).status_code == 201
        feeds.post(feed["id"], csv_bytes(unit_switch(current)))  # delivery runs after the response
    finally:
        receiver.close()
    assert receiver.attempts == 3 and len(receiver.accepted) == 1
    body, headers = receiver.accepted[0]
    assert verify(body, SECRET, headers[SIGNATURE_HEADER]) and not verify(
        body, "other-secret", headers[SIGNATURE_HEADER]
    )
    payload = json.loads(body)
    assert payload["event"] == "opened" and payload["alert"]["check"] == "unit_change"
    [delivery] = feeds.call("GET", f"/feeds/{feed['id']}/deliveries", Role.viewer).json()
    assert (
        delivery["status"] == "delivered"
        and delivery["attempts"] == 3
        and headers["X-Crosswalk-Delivery"] == str(delivery["id"])
    )

    listed = feeds.call("GET", f"/feeds/{feed['id']}/webhooks", Role.viewer).text
    events = feeds.call("GET", "/audit/events").text
    assert SECRET not in listed and SECRET not in events  # the secret lives in a private file only
    feeds.verify_audit()


def test_messages_wait_in_the_outbox_while_the_receiver_is_down(feeds, halves, monkeypatch, local_webhooks):
    monkeypatch.setattr(feed_routes, "AFTER_POST_DELIVERY_S", 0.0)  # one attempt after the batch, no retry loop
    reference, current = halves
    feed = feeds.create(csv_bytes(reference))
    probe = Receiver()
    url, port = probe.url, probe.port
    probe.close()  # down: connections to its port are refused
    feeds.call("POST", f"/feeds/{feed['id']}/webhooks", json={"url": url, "secret": SECRET, "base_delay": 0.01})
    feeds.post(feed["id"], csv_bytes(unit_switch(current)))
    [waiting] = feeds.call("GET", f"/feeds/{feed['id']}/deliveries", params={"status": "pending"}).json()
    assert waiting["attempts"] == 1 and waiting["last_error"]

    receiver = Receiver(port=port)  # back up
    try:
        for _ in range(50):  # past the 0.01 s back-off
            result = feeds.call("POST", f"/feeds/{feed['id']}/deliveries").json()
            if result["delivered"]:
                break
    finally:
        receiver.close()
    assert result == {"delivered": 1, "pending": 0, "dead": 0} and len(receiver.accepted) == 1
    feeds.verify_audit()


BAD_BATCHES = [
    ("empty.csv", b"", "empty batch"),
    ("header-only.csv", b"measurement_id,person_id,site\n", "empty batch"),
    ("other-feed.csv", b"patient,drug,dose\n1,aspirin,100\n", "wrong columns"),
    ("broken.parquet", b"PAR1 not really parquet", "not readable as Parquet"),
    ("broken.ndjson", b'{"resourceType": "Observation", \n', "invalid JSON"),
    ("not-fhir.ndjson", b'{"hello": "world"}\n', "not a FHIR resource"),
]


@pytest.mark.parametrize(("filename", "data", "phrase"), BAD_BATCHES)
def test_bad_batches_are_4xx_and_change_nothing(feeds, halves, service, filename, data, phrase):
    feed = feeds.create(csv_bytes(halves[0]))
    before, files_before = feeds.audit_count(), sorted(Path(service.settings.home).rglob("*"))
    response = feeds.post(feed["id"], data, filename=filename, expect=422)
    assert response["status"] == 422 and phrase in response["detail"] and filename in response["detail"]
    assert "/tmp" not in response["detail"]
    assert feeds.audit_count() == before and sorted(Path(service.settings.home).rglob("*")) == files_before
    assert feeds.call("GET", f"/feeds/{feed['id']}/batches", Role.viewer).json() == []


def test_bad_registrations_and_contract_edits(feeds, halves):
    reference = csv_bytes(halves[0])
    assert feeds.call("POST", "/feeds", data={"name": "x"}, files={"file": ("r.csv", b"")}).status_code == 422
    missing = feeds.call(
        "POST", "/feeds", data={"name": "x", "segment_columns": ["clinic"]}, files={"file": ("r.csv", reference)}
    )
    assert missing.status_code == 422 and "clinic" in missing.json()["detail"]
    feed = feeds.create(reference)
    assert feeds.call("POST", "/feeds", data={"name": "labs"}, files={"file": ("r.csv", reference)}).status_code == 409

    path = f"/feeds/{feed['id']}/contract"
    contract = feeds.call("GET", path).json()
    bad = {**contract, "segment_columns": ["clinic"]}
    assert feeds.call("PUT", path, json=bad).status_code == 422
    assert (
        feeds.call("PUT", path, json={"columns": [{"name": "x", "kind": "weird", "dtype": "object"}]}).status_code
        == 422
    )

    edited = json.loads(json.dumps(contract))
    edited["segment_columns"] = []  # score the feed as a whole, not per site
    assert feeds.call("PUT", path, json=edited, headers={"If-Match": '"7"'}).status_code == 409
    ok = feeds.call("PUT", path, json=edited, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"' and ok.json()["segment_columns"] == []
    batch = feeds.post(feed["id"], csv_bytes(unit_switch(halves[1])))
    assert batch["summary"]["segment_column"] is None
    feeds.verify_audit()


def test_fhir_ndjson_batches(feeds):
    data = (MONITORING / "fhir_resources.ndjson").read_bytes()
    feed = feeds.create(data, name="fhir", filename="reference.ndjson", segment_columns=["site"])
    batch = feeds.post(feed["id"], data, filename="batch.ndjson")
    assert (
        batch["rows"] == 14 and batch["alerts"] == []
    )  # 12 Observations, a Condition, a MedicationRequest; not the Patient


def test_unmapped_codes_come_from_the_mapping_projects_approvals(feeds, service):
    """A feed naming a review project: codes without an approved mapping there are 'unmapped'."""
    project = service.ready_project()
    for code in ("GLU", "NA"):
        assert service.decide(project, code, action="approve").status_code == 200
    rng = np.random.default_rng(1)

    def lab_batch(n: int, unmapped_share: float) -> bytes:
        codes = rng.choice(["GLU", "NA"], n)
        codes[rng.random(n) < unmapped_share] = "K"  # imported but not approved
        return pd.DataFrame({"lab_code": codes, "result": rng.normal(5, 1, n).round(2)}).to_csv(index=False).encode()

    mapped = feeds.create(lab_batch(600, 0.0), name="mapped", segment_columns=[], mapping_project_id=project)
    unmapped = feeds.post(mapped["id"], lab_batch(600, 0.3))
    assert ("unmapped_codes", "lab_code") in {(a["check"], a["column"]) for a in unmapped["alerts"]}
    assert "no approved mapping" in next(a["message"] for a in unmapped["alerts"] if a["check"] == "unmapped_codes")
    assert (
        feeds.call(
            "POST", "/feeds", data={"name": "y", "mapping_project_id": 999}, files={"file": ("r.csv", lab_batch(50, 0))}
        ).status_code
        == 422
    )


def test_large_uploads_are_refused(feeds, halves, monkeypatch):
    from service.api import problems

    feed = feeds.create(csv_bytes(halves[0]))
    monkeypatch.setattr(feed_routes, "MAX_BODY_BYTES", 1000)
    response = feeds.call(
        "POST", f"/feeds/{feed['id']}/batches", files={"file": ("big.csv", io.BytesIO(csv_bytes(halves[1])))}
    )
    assert response.status_code == 413 and response.headers["content-type"] == problems.PROBLEM_JSON


def test_the_services_background_worker_retries_pending_messages(feeds, halves, service, monkeypatch, local_webhooks):
    """While the API runs (its lifespan), queued messages go out without anyone asking."""
    from fastapi.testclient import TestClient

    monkeypatch.setattr(feed_routes, "AFTER_POST_DELIVERY_S", 0.0)
    monkeypatch.setattr(feed_routes, "WORKER_INTERVAL_S", 0.05)
    feed = feeds.create(csv_bytes(halves[0]))
    receiver = Receiver(failures=1)  # the attempt right after the batch fails; the worker's succeeds
    try:
        feeds.call(
            "POST", f"/feeds/{feed['id']}/webhooks", json={"url": receiver.url, "secret": SECRET, "base_delay": 0.01}
        )
        feeds.post(feed["id"], csv_bytes(unit_switch(halves[1])))
        assert receiver.attempts == 1 and not receiver.accepted
        with TestClient(service.app) as client:  # runs the lifespan: the delivery worker starts
            headers = service.auth(Role.viewer)
            for _ in range(200):
                [delivery] = client.get(f"/feeds/{feed['id']}/deliveries", headers=headers).json()
                if delivery["status"] == "delivered":
                    break
                threading.Event().wait(0.05)
    finally:
        receiver.close()
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2 and len(receiver.accepted) == 1


def test_a_kept_profile_of_a_newer_schema_is_a_clear_conflict(tmp_path):
    import gzip

    from service.monitoring import files
    from service.store.errors import Conflict

    data = gzip.compress(json.dumps({"schema": 99, "segment_column": None, "segments": {}}).encode())
    relative, sha = files.write_bytes(tmp_path, tmp_path / "feeds" / "reference.profile.json.gz", data)
    with pytest.raises(Conflict, match=r"reference.profile.json.gz: profile schema 99 is newer than this crosswalk"):
        files.read_profile(tmp_path, relative, sha)
