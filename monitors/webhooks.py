"""Webhook delivery of alert events: signed JSON, retried with exponential back-off, from an outbox persisted
in SQLite so nothing is lost while a receiver is down (delivery resumes on the next `deliver_due`).

Receivers verify `X-Crosswalk-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>` and
may drop repeats by `X-Crosswalk-Delivery` (the outbox id): a timeout after the receiver committed can cause
one resend, so delivery is at-least-once on the wire and exactly-once for a receiver that dedups.
Stdlib urllib: one POST per message needs no client library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitors.alerts import NOTIFY, AlertEvent

SIGNATURE_HEADER = "X-Crosswalk-Signature"
DELIVERY_HEADER = "X-Crosswalk-Delivery"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


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


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """Raise unless the receiver answered 2xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)


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
        except (urllib.error.URLError, OSError, ValueError) as error:
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
        sleep(max(0.0, wait))
