"""Webhook delivery of alert events: signed JSON, retried with exponential back-off, from an outbox persisted
in SQLite so nothing is lost while a receiver is down (delivery resumes on the next `deliver_due`).

Receivers verify `X-Crosswalk-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>` and
may drop repeats by `X-Crosswalk-Delivery` (the outbox id): a timeout after the receiver committed can cause
one resend, so delivery is at-least-once on the wire and exactly-once for a receiver that dedups.

A webhook URL is configured by one user and fetched by the service, so it must not reach what only the
service can reach (server-side request forgery): only http(s) (plain http when the policy allows it), no
user info or control characters, and every address the host resolves to must be public unless the policy
allows that host by name. The host is resolved once and the connection goes to the checked address (a
second lookup could answer differently: DNS rebinding); redirects are never followed (they would carry the
signature elsewhere) and the answer is read up to a size cap within the timeout.
Stdlib http.client: one POST per message needs no client library, and it lets the checked address be pinned.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import sqlite3
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from monitors.alerts import NOTIFY, AlertEvent

SIGNATURE_HEADER = "X-Crosswalk-Signature"
DELIVERY_HEADER = "X-Crosswalk-Delivery"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
IDLE_POLL_S = 0.2  # `drain`'s pause when a due message was not attempted


@dataclass
class Webhook:
    url: str
    secret: str
    max_attempts: int = 8
    base_delay: float = 2.0  # seconds before the 2nd attempt; doubles after each failure
    max_delay: float = 600.0
    timeout: float = 10.0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(body, secret), header)


def backoff(attempts: int, hook: Webhook) -> float:
    """Delay after `attempts` failed attempts: base, 2*base, 4*base ... capped."""
    return min(hook.base_delay * 2 ** (attempts - 1), hook.max_delay)


class UnsafeURL(ValueError):
    """A webhook URL the policy refuses; the message says why."""


@dataclass(frozen=True)
class UrlPolicy:
    """Where webhooks may post: https only unless `allow_http`; private, loopback and link-local
    addresses only for hosts named in `allow_hosts` (exact host names or IP literals, lower case)."""

    allow_http: bool = False
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    max_response_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP address the connection goes to


def check_url(url: str, policy: UrlPolicy) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a well-formed URL the policy's schemes allow; no DNS lookup."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("webhook URL contains whitespace or control characters")
    parts = urlsplit(url)
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in schemes:
        plain_http_off = parts.scheme == "http" and not policy.allow_http
        hint = " (plain http is off: CROSSWALK_WEBHOOK_ALLOW_HTTP)" if plain_http_off else ""
        raise UnsafeURL(f"webhook URL scheme {parts.scheme!r} refused: use {' or '.join(schemes)}{hint}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("webhook URL must not carry user:password@ (it would be stored and logged)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("webhook URL has an invalid port") from None
    if not parts.hostname:
        raise UnsafeURL("webhook URL names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname.lower().rstrip("."), port, path


def is_public(address: str) -> bool:
    """A globally routable unicast address: not private, loopback, link-local, multicast or reserved."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(url: str, policy: UrlPolicy, lookup=socket.getaddrinfo) -> Target:
    """The URL checked and its host resolved once; refused when any address is not public and the host
    is not allowed by name."""
    scheme, host, port, path = check_url(url, policy)
    addresses = [host] if _is_ip(host) else _lookup_addresses(host, port, lookup)
    if not addresses:
        raise UnsafeURL(f"webhook host {host!r} does not resolve")
    if host not in policy.allow_hosts:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise UnsafeURL(
                f"webhook host {host!r} resolves to a non-public address ({private[0]}); an admin may allow it "
                "with CROSSWALK_WEBHOOK_ALLOW_HOSTS"
            )
    return Target(scheme, host, port, path, addresses[0])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _lookup_addresses(host: str, port: int, lookup) -> list[str]:
    try:
        infos = lookup(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeURL(f"webhook host {host!r} does not resolve: {error}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to the checked address; the certificate is still checked against the host name (SNI)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Sender:
    """`post` under a `UrlPolicy`: checked, pinned, never redirected, answer size and time capped."""

    def __init__(self, policy: UrlPolicy, lookup=socket.getaddrinfo) -> None:
        self.policy, self.lookup = policy, lookup

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
        """Raise unless the receiver answered 2xx (a redirect is a failure, never followed)."""
        target = resolve(url, self.policy, self.lookup)
        connection = (_PinnedHTTPS if target.scheme == "https" else _PinnedHTTP)(target, timeout)
        deadline = time.monotonic() + timeout
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            self._drain(response, deadline)
        finally:
            connection.close()
        if 300 <= response.status < 400:
            raise urllib.error.HTTPError(url, response.status, "redirect not followed", response.headers, None)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)

    def _drain(self, response: http.client.HTTPResponse, deadline: float) -> None:
        """Read (and drop) the answer up to the size cap, giving up at the deadline."""
        left = self.policy.max_response_bytes
        while left > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("webhook receiver too slow to answer")
            chunk = response.read(min(left, 8192))
            if not chunk:
                return
            left -= len(chunk)


post = Sender(UrlPolicy())  # the strict default: public https receivers only


@dataclass
class OutboxMessage:
    id: int
    url: str
    body: bytes
    attempts: int
    status: str
    next_attempt_at: float
    last_error: str | None


class Outbox:
    """Messages waiting for delivery, in a SQLite file: survives restarts of the monitor and of the receiver."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, "
                "body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending', "
                "next_attempt_at REAL NOT NULL, last_error TEXT, delivered_at REAL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def enqueue(self, url: str, payload: dict) -> int:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        with self._lock, self._connect() as db:
            cursor = db.execute(
                "INSERT INTO outbox (url, body, next_attempt_at) VALUES (?, ?, ?)", (url, body, self.clock())
            )
            return int(cursor.lastrowid)

    def messages(self, status: str | None = None) -> list[OutboxMessage]:
        sql = "SELECT id, url, body, attempts, status, next_attempt_at, last_error FROM outbox"
        args: tuple = ()
        if status:
            sql, args = sql + " WHERE status = ?", (status,)
        with self._lock, self._connect() as db:
            return [OutboxMessage(*row) for row in db.execute(sql + " ORDER BY id", args)]

    def due(self) -> list[OutboxMessage]:
        return [m for m in self.messages(PENDING) if m.next_attempt_at <= self.clock()]

    def mark(self, message_id: int, status: str, attempts: int, next_at: float, error: str | None) -> None:
        delivered = self.clock() if status == DELIVERED else None
        with self._lock, self._connect() as db:
            db.execute(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, delivered_at = ? "
                "WHERE id = ?",
                (status, attempts, next_at, error, delivered, message_id),
            )


def enqueue_events(outbox: Outbox, hooks: list[Webhook], events: list[AlertEvent]) -> list[int]:
    """Queue the events worth telling someone about (opened, escalated, resolved) for every hook."""
    ids = []
    for event in events:
        if event.kind in NOTIFY:
            ids += [outbox.enqueue(hook.url, event.to_dict()) for hook in hooks]
    return ids


def deliver_due(outbox: Outbox, hooks: list[Webhook], sender=post) -> dict[str, int]:
    """One attempt for every due message; failures are rescheduled with back-off or, past max_attempts, dead."""
    by_url = {h.url: h for h in hooks}
    tally = {DELIVERED: 0, PENDING: 0, DEAD: 0}
    for message in outbox.due():
        hook = by_url.get(message.url)
        if hook is None:
            continue  # hook removed from config: keep the message until it is configured again
        attempts = message.attempts + 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(message.body, hook.secret),
            DELIVERY_HEADER: str(message.id),
        }
        try:
            sender(message.url, message.body, headers, hook.timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            status = DEAD if attempts >= hook.max_attempts else PENDING
            outbox.mark(message.id, status, attempts, outbox.clock() + backoff(attempts, hook), str(error)[:500])
            tally[status] += 1
        else:
            outbox.mark(message.id, DELIVERED, attempts, message.next_attempt_at, None)
            tally[DELIVERED] += 1
    return tally


def drain(outbox: Outbox, hooks: list[Webhook], deadline_s: float = 60.0, sender=post, sleep=time.sleep) -> int:
    """Deliver until nothing is pending or the deadline passes; returns the number still pending."""
    stop = time.monotonic() + deadline_s
    while True:
        deliver_due(outbox, hooks, sender)
        pending = outbox.messages(PENDING)
        if not pending or time.monotonic() >= stop:
            return len(pending)
        wait = min(m.next_attempt_at for m in pending) - outbox.clock()
        if wait > stop - time.monotonic():
            return len(pending)  # the next attempt is due after the deadline: waiting for it is wasted time
        # a message due but not attempted (its hook is not configured, or another deliverer holds it) is
        # looked at again after a pause, not in a busy loop
        sleep(wait if wait > 0 else IDLE_POLL_S)
