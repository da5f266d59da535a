"""Webhook delivery against a real HTTP receiver on 127.0.0.1: retries with back-off, signature, and an
outbox that keeps messages across a restart while the receiver is down."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitors.alerts import AlertEvent, alerts_from_findings
from monitors.checks.base import Finding
from monitors.webhooks import (
    DEAD,
    DELIVERED,
    PENDING,
    SIGNATURE_HEADER,
    Outbox,
    Webhook,
    backoff,
    deliver_due,
    drain,
    enqueue_events,
    verify,
)

SECRET = "s3cret"


class Receiver:
    """Answers 500 to the first `failures` POSTs, then 204; records what it accepted."""

    def __init__(self, failures: int, port: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.accepted: list[tuple[bytes, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.accepted.append((body, dict(self.headers)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def events():
    finding = Finding("unit_change", "unit[2339-0]", "B", "critical", 0.98, 0.1, "site B: glucose unit changed")
    return [AlertEvent("opened", a) for a in alerts_from_findings([finding], "labs", "b1")]


def test_fails_twice_then_delivered_exactly_once_with_valid_signature(tmp_path, events):
    receiver = Receiver(failures=2)
    try:
        hook = Webhook(receiver.url, SECRET, base_delay=0.05)
        outbox = Outbox(tmp_path / "outbox.db")
        assert len(enqueue_events(outbox, [hook], events + [AlertEvent("updated", events[0].alert)])) == 1
        assert drain(outbox, [hook], deadline_s=10) == 0
    finally:
        receiver.close()
    assert receiver.attempts == 3 and len(receiver.accepted) == 1
    body, headers = receiver.accepted[0]
    assert verify(body, SECRET, headers[SIGNATURE_HEADER]) and not verify(body, "wrong", headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event"] == "opened" and payload["alert"]["message"] == "site B: glucose unit changed"
    [message] = outbox.messages()
    assert message.status == DELIVERED and message.attempts == 3


def test_outbox_keeps_messages_across_a_restart_until_the_receiver_is_back(tmp_path, events):
    path = tmp_path / "outbox.db"
    clock = [1000.0]
    probe = Receiver(failures=0)
    url, port = probe.url, probe.server.server_address[1]
    probe.close()  # the receiver is down: connections to its port are refused
    hook = Webhook(url, SECRET, base_delay=1.0)
    outbox = Outbox(path, clock=lambda: clock[0])
    enqueue_events(outbox, [hook], events)
    assert deliver_due(outbox, [hook]) == {DELIVERED: 0, PENDING: 1, DEAD: 0}
    assert deliver_due(outbox, [hook]) == {DELIVERED: 0, PENDING: 0, DEAD: 0}  # backing off: not due yet
    del outbox  # the monitor process stops

    receiver = Receiver(failures=0, port=port)  # the receiver comes back
    try:
        clock[0] += 5
        restarted = Outbox(path, clock=lambda: clock[0])  # a new process opens the same outbox file
        assert [m.attempts for m in restarted.messages(PENDING)] == [1]
        assert drain(restarted, [hook], deadline_s=5) == 0
    finally:
        receiver.close()
    assert len(receiver.accepted) == 1
    assert json.loads(receiver.accepted[0][0])["alert"]["check"] == "unit_change"


def test_gives_up_after_max_attempts(tmp_path, events):
    clock = [0.0]
    hook = Webhook("http://127.0.0.1:9/hook", SECRET, max_attempts=3, base_delay=1.0)
    outbox = Outbox(tmp_path / "o.db", clock=lambda: clock[0])
    enqueue_events(outbox, [hook], events)
    for _ in range(3):
        deliver_due(outbox, [hook])
        clock[0] += 100
    [message] = outbox.messages()
    assert message.status == DEAD and message.attempts == 3 and message.last_error


def test_backoff_doubles_and_caps():
    hook = Webhook("http://127.0.0.1/", "x", base_delay=2.0, max_delay=10.0)
    assert [backoff(n, hook) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
