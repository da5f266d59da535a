"""The `monitors.webhooks` outbox on the `webhook_delivery` table.

Alert events are queued in the same transaction that records the alerts, so an event is never lost: if
the transaction commits, its deliveries exist; if the receiver is down they stay pending, retried with the
library's back-off by `deliver` (after each batch, by the API's background worker, by `POST
/feeds/{feed}/deliveries` or `crosswalk feed deliver`). Each attempt commits on its own, outside any long
transaction, so no database lock is held while a receiver is slow. Deliverers may run at once (threads,
service workers, the CLI): each message is claimed (`service.store.jobs`) before it is posted and released
once its outcome is committed, so no two post the same message. Signing, back-off and the give-up rule are
`monitors.webhooks`'s; this module only stores messages.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from monitors.webhooks import (
    DEAD,
    DELIVERED,
    PENDING,
    OutboxMessage,
    Sender,
    Webhook,
    deliver_due,
    drain,
    enqueue_events,
)
from service import audit
from service.monitoring import files
from service.monitoring.alerts import plain
from service.settings import get_settings
from service.store.db import session_scope
from service.store.errors import StoreError
from service.store.feeds import DeliveryResult, Feed, FeedWebhook, WebhookDelivery
from service.store.jobs import WEBHOOK_DELIVERY, JobClaims
from service.store.tables import utcnow

log = logging.getLogger("crosswalk.monitoring")
DELIVERER = "webhook-deliverer"  # the audit log's actor for delivery attempts


def hook_rows(session: Session, feed_id: int) -> list[FeedWebhook]:
    query = (
        select(FeedWebhook)
        .where(FeedWebhook.feed_id == feed_id, col(FeedWebhook.active).is_(True))
        .order_by(FeedWebhook.id)
    )
    return list(session.exec(query))


def as_webhook(row: FeedWebhook, secret: str = "") -> Webhook:
    return Webhook(row.url, secret, row.max_attempts, row.base_delay, row.max_delay, row.timeout)


class _Queue:
    """Just enough of `monitors.webhooks.Outbox` for `enqueue_events`, writing in the caller's transaction."""

    def __init__(self, session: Session, feed: Feed, hooks: list[FeedWebhook], actor: str) -> None:
        self.session, self.feed, self.actor = session, feed, actor
        self.by_url = {h.url: h for h in hooks}

    def enqueue(self, url: str, payload: dict) -> int:
        body = json.dumps(plain(payload), sort_keys=True, separators=(",", ":"))
        row = WebhookDelivery(
            feed_id=self.feed.id,
            webhook_id=self.by_url[url].id,
            url=url,
            event=payload["event"],
            alert_uid=payload["alert"]["id"],
            body=body,
            next_attempt_at=time.time(),
        )
        audit.record(self.session, self.actor, "webhook.enqueue", row)
        return int(row.id)


def queue_events(session: Session, feed: Feed, events, actor: str) -> list[int]:
    """Queue the events worth a message (opened, escalated, resolved) for every active webhook of the feed."""
    hooks = hook_rows(session, feed.id)
    return enqueue_events(_Queue(session, feed, hooks, actor), [as_webhook(h) for h in hooks], events)


class StoreOutbox:
    """`monitors.webhooks.Outbox`'s interface (due, messages, mark, clock) over one feed's deliveries."""

    def __init__(self, engine: Engine, feed_id: int, claims: JobClaims, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.feed_id, self.claims, self.clock = engine, feed_id, claims, clock

    def messages(self, status: str | None = None, message_id: int | None = None) -> list[OutboxMessage]:
        query = select(WebhookDelivery).where(WebhookDelivery.feed_id == self.feed_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        if message_id is not None:
            query = query.where(WebhookDelivery.id == message_id)
        with session_scope(self.engine) as session:
            rows = session.exec(query.order_by(WebhookDelivery.id)).all()
        return [
            OutboxMessage(r.id, r.url, r.body.encode(), r.attempts, r.status, r.next_attempt_at, r.last_error)
            for r in rows
        ]

    def due(self) -> Iterator[OutboxMessage]:
        """The due messages, each claimed when the deliverer reaches it and released once it has been
        handled: one that another deliverer holds is skipped, and one it finished meanwhile (read again
        after the claim) is left out."""
        for candidate in self.messages(PENDING):
            if candidate.next_attempt_at > self.clock() or not self.claims.take(candidate.id):
                continue
            try:
                fresh = self.messages(PENDING, candidate.id)
                if fresh and fresh[0].next_attempt_at <= self.clock():
                    yield fresh[0]  # the deliverer posts it and marks it (committed) before we resume
            finally:
                self.claims.release(candidate.id)

    def mark(self, message_id: int, status: str, attempts: int, next_at: float, error: str | None) -> None:
        changes = {"status": status, "attempts": attempts, "next_attempt_at": next_at, "last_error": error}
        if status == DELIVERED:
            changes["delivered_at"] = utcnow()
        action = {DELIVERED: "webhook.delivered", DEAD: "webhook.dead"}.get(status, "webhook.retry")
        with session_scope(self.engine) as session:
            row = session.get(WebhookDelivery, message_id)
            audit.record(session, DELIVERER, action, row, changes)


def _signing_hooks(session: Session, home, feed_id: int) -> list[Webhook]:
    """The feed's webhooks with their secrets; a hook whose secret file is gone or changed is left out, so
    its messages wait (pending) until it is configured again instead of going out unsigned or mis-signed."""
    hooks = []
    for row in hook_rows(session, feed_id):
        try:
            secret = files.read_checked(home, row.secret_file, row.secret_sha256).decode()
        except StoreError as error:
            log.warning("webhook %d of feed %d not delivered: %s", row.id, feed_id, error.detail)
            continue
        hooks.append(as_webhook(row, secret))
    return hooks


def deliver(engine: Engine, home, feed_id: int | None = None, deadline_s: float = 0.0, sender=None) -> DeliveryResult:
    """Post what is due: one attempt each (deadline 0), or retry until delivered or `deadline_s` passes.
    Messages another deliverer is posting are left to it.

    The default sender follows the settings' webhook URL policy (public https receivers unless an admin
    allows more)."""
    sender = sender or Sender(get_settings().webhook_policy)
    with JobClaims(engine, WEBHOOK_DELIVERY) as claims:
        for feed in _feeds_with_pending(engine, feed_id):
            with session_scope(engine) as session:
                hooks = _signing_hooks(session, home, feed)
            outbox = StoreOutbox(engine, feed, claims)
            if deadline_s > 0:
                drain(outbox, hooks, deadline_s=deadline_s, sender=sender)
            else:
                deliver_due(outbox, hooks, sender=sender)
    return delivery_counts(engine, feed_id)


def _feeds_with_pending(engine: Engine, feed_id: int | None) -> list[int]:
    query = select(WebhookDelivery.feed_id).where(WebhookDelivery.status == PENDING).distinct()
    if feed_id is not None:
        query = query.where(WebhookDelivery.feed_id == feed_id)
    with session_scope(engine) as session:
        return sorted(session.exec(query).all())


def delivery_counts(engine: Engine, feed_id: int | None = None) -> DeliveryResult:
    with session_scope(engine) as session:
        query = select(WebhookDelivery.status)
        if feed_id is not None:
            query = query.where(WebhookDelivery.feed_id == feed_id)
        statuses = list(session.exec(query))
    return DeliveryResult(**{s: statuses.count(s) for s in (DELIVERED, PENDING, DEAD)})


def list_deliveries(session: Session, feed: Feed, status: str | None = None, limit: int = 100) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.feed_id == feed.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.exec(query.order_by(col(WebhookDelivery.id).desc()).limit(limit)))


class Worker:
    """A daemon thread that calls `deliver` every `interval` seconds until stopped (each service worker runs
    one; their claims keep them from posting a message twice)."""

    def __init__(self, engine: Engine, home, interval: float = 5.0) -> None:
        self.engine, self.home, self.interval = engine, home, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crosswalk-webhooks", daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                deliver(self.engine, self.home)
            except Exception as error:  # keep the worker alive; the next tick retries
                log.error("webhook delivery failed: %s", type(error).__name__)
