"""Webhook delivery against a real HTTP receiver on 127.0.0.1: retries with back-off, signature, and an
outbox that keeps messages across a restart while the receiver is down."""

from __future__ import annotations

import json
import re
import socket
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
    Sender,
    UnsafeURL,
    UrlPolicy,
    Webhook,
    backoff,
    deliver_due,
    drain,
    enqueue_events,
    resolve,
    verify,
)
from tests.webhook_receiver import AnsweringReceiver

SECRET = "s3cret"
# The receivers run on 127.0.0.1 over http: allowed explicitly, as an admin would for an in-house receiver.
LOCAL = Sender(UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"})))


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
        assert drain(outbox, [hook], deadline_s=10, sender=LOCAL) == 0
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
    assert deliver_due(outbox, [hook], LOCAL) == {DELIVERED: 0, PENDING: 1, DEAD: 0}
    assert deliver_due(outbox, [hook], LOCAL) == {DELIVERED: 0, PENDING: 0, DEAD: 0}  # backing off: not due yet
    del outbox  # the monitor process stops

    receiver = Receiver(failures=0, port=port)  # the receiver comes back
    try:
        clock[0] += 5
        restarted = Outbox(path, clock=lambda: clock[0])  # a new process opens the same outbox file
        assert [m.attempts for m in restarted.messages(PENDING)] == [1]
        assert drain(restarted, [hook], deadline_s=5, sender=LOCAL) == 0
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
        deliver_due(outbox, [hook], LOCAL)
        clock[0] += 100
    [message] = outbox.messages()
    assert message.status == DEAD and message.attempts == 3 and message.last_error


def test_backoff_doubles_and_caps():
    hook = Webhook("http://127.0.0.1/", "x", base_delay=2.0, max_delay=10.0)
    assert [backoff(n, hook) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]


# -- where a webhook may post ----------------------------------------------------------------------------
def _lookup(answers: dict[str, list[str]], calls: list[str] | None = None):
    """A stand-in for socket.getaddrinfo: host -> addresses, no real DNS."""

    def lookup(host, port, type=0):  # noqa: A002 (getaddrinfo's keyword)
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(f"{host}: unknown host")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in answers[host]]

    return lookup


PUBLIC_DNS = _lookup({"hooks.example.org": ["93.184.216.34"], "mixed.example.org": ["93.184.216.34", "10.1.2.3"]})


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme 'file' refused"),
        ("gopher://hooks.example.org/_stats", "scheme 'gopher' refused"),
        ("http://hooks.example.org/hook", "plain http is off"),
        ("https://169.254.169.254/latest/meta-data/", "non-public address (169.254.169.254)"),
        ("https://localhost:5432/", "non-public address"),
        ("https://127.0.0.1/hook", "non-public address (127.0.0.1)"),
        ("https://10.0.0.7/hook", "non-public address (10.0.0.7)"),
        ("https://[::1]/hook", "non-public address (::1)"),
        ("https://[::ffff:127.0.0.1]/hook", "non-public address"),
        ("https://mixed.example.org/hook", "non-public address (10.1.2.3)"),  # one private answer is enough
        ("https://hooks.example.org/a\r\nX-Injected: 1", "control characters"),
        ("https://hooks.example.org/a b", "whitespace"),
        ("https://admin:pw@hooks.example.org/hook", "user:password@"),
        ("https://nowhere.invalid/hook", "does not resolve"),
    ],
)
def test_unsafe_webhook_urls_are_refused(url, why):
    lookup = _lookup(
        {
            "localhost": ["127.0.0.1"],
            "hooks.example.org": ["93.184.216.34"],
            "mixed.example.org": ["93.184.216.34", "10.1.2.3"],
        }
    )
    with pytest.raises(UnsafeURL, match=re.escape(why)):
        resolve(url, UrlPolicy(), lookup)


def test_a_public_https_url_passes_and_an_admin_may_allow_a_private_host_by_name():
    target = resolve("https://hooks.example.org/hook?team=labs", UrlPolicy(), PUBLIC_DNS)
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.org", 443)
    assert (target.path, target.address) == ("/hook?team=labs", "93.184.216.34")
    inhouse = UrlPolicy(allow_http=True, allow_hosts=frozenset({"alerts.corp"}))
    assert resolve("http://alerts.corp:8080/x", inhouse, _lookup({"alerts.corp": ["10.0.0.5"]})).address == "10.0.0.5"
    with pytest.raises(UnsafeURL):  # the allowance names a host, not every private address
        resolve("http://10.0.0.5:8080/x", inhouse, _lookup({"10.0.0.5": ["10.0.0.5"]}))


def test_delivery_connects_to_the_address_checked_once_and_names_the_host():
    """The host is looked up once per delivery and the connection goes to that answer (no second lookup
    that a rebinding DNS server could answer differently); the Host header still names the host."""
    receiver = Receiver(failures=0)
    calls: list[str] = []
    port = receiver.server.server_address[1]
    sender = Sender(
        UrlPolicy(allow_http=True, allow_hosts=frozenset({"receiver.test"})),
        _lookup({"receiver.test": ["127.0.0.1"]}, calls),
    )
    try:
        sender(f"http://receiver.test:{port}/hook", b"{}", {"Content-Type": "application/json"}, 5.0)
    finally:
        receiver.close()
    assert calls == ["receiver.test"]
    assert receiver.accepted[0][1]["Host"] == f"receiver.test:{port}"


def _one_failed_attempt(tmp_path, events, hook: Webhook) -> str:
    """Queue the events for `hook`, make one attempt that must fail (pending), return its error."""
    outbox = Outbox(tmp_path / "o.db")
    enqueue_events(outbox, [hook], events)
    assert deliver_due(outbox, [hook], LOCAL) == {DELIVERED: 0, PENDING: 1, DEAD: 0}
    return outbox.messages()[0].last_error


def test_a_redirect_is_never_followed_and_the_message_stays_pending(tmp_path, events):
    def redirect(handler):
        handler.send_response(307)
        handler.send_header("Location", "/elsewhere")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    receiver = AnsweringReceiver(redirect)
    try:
        error = _one_failed_attempt(tmp_path, events, Webhook(receiver.url + "/hook", SECRET, base_delay=60))
    finally:
        receiver.close()
    assert receiver.paths == ["/hook"]  # the signed body went nowhere else
    assert "redirect not followed" in error


def test_an_endless_answer_is_cut_at_the_size_cap():
    def endless(handler):
        handler.send_response(200)
        handler.end_headers()
        try:
            while True:
                handler.wfile.write(b"x" * 65536)
        except OSError:
            pass  # the sender hung up after its cap

    receiver = AnsweringReceiver(endless)
    try:
        sender = Sender(UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}), max_response_bytes=100_000))
        sender(receiver.url + "/hook", b"{}", {}, 5.0)  # returns: it would read forever without the cap
    finally:
        receiver.close()


def test_a_receiver_that_never_answers_fails_at_the_timeout(tmp_path, events):
    stop = threading.Event()
    receiver = AnsweringReceiver(lambda handler: stop.wait(10))
    try:
        error = _one_failed_attempt(tmp_path, events, Webhook(receiver.url + "/hook", SECRET, timeout=0.2))
    finally:
        stop.set()
        receiver.close()
    assert "timed out" in error
