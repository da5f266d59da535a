"""`monitors.alerts.AlertStore` on the `feed_alert` table, and what people do with alerts.

The dedup and lifecycle rules stay in `monitors.alerts` (reconcile, acknowledge, resolve); this module only
maps `Alert` <-> row and writes each change through `audit.record`, naming the action after the change.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from monitors import alerts as lib
from monitors.alerts import ACTIVE, Alert, AlertEvent
from monitors.checks.base import SEVERITIES
from service import audit
from service.store.errors import Conflict, Invalid, NotFound
from service.store.feeds import ALERT_STATUSES, AlertPage, AlertPublic, Feed, FeedAlert
from service.store.tables import utcnow

# Alert field -> column, where the names differ (`check` and `column` are SQL keywords).
RENAMED = {"check": "check_name", "column": "column_name", "id": "uid"}


def plain(value: Any) -> Any:
    """JSON-safe data: non-finite floats become None (PostgreSQL's JSON has no NaN; SQLite drops it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def row_values(alert: Alert) -> dict[str, Any]:
    data = plain(alert.to_dict())
    data.pop("feed")
    return {RENAMED.get(k, k): v for k, v in data.items()}


def to_alert(row: FeedAlert, feed: str) -> Alert:
    data = row.model_dump(exclude={"id", "feed_id", "resolved_by"})
    for name, column in RENAMED.items():
        data[name] = data.pop(column)
    for name in ("statistic", "threshold"):
        data[name] = math.nan if data[name] is None else data[name]
    return Alert(feed=feed, **data)


def action_for(before: FeedAlert | None, after: Alert) -> str:
    if before is None:
        return "alert.open"
    if after.status != before.status:
        return {"resolved": "alert.resolve", "acknowledged": "alert.acknowledge", "open": "alert.reopen"}[after.status]
    return "alert.escalate" if after.severity != before.severity else "alert.update"


class StoreAlerts:
    """The AlertStore of one feed, inside the caller's transaction."""

    def __init__(self, session: Session, feed: Feed, actor: str) -> None:
        self.session, self.feed, self.actor = session, feed, actor

    def _rows(self, *where) -> list[FeedAlert]:
        query = select(FeedAlert).where(FeedAlert.feed_id == self.feed.id, *where).order_by(FeedAlert.id)
        return list(self.session.exec(query))

    def active(self, feed: str) -> list[Alert]:
        return [to_alert(r, self.feed.name) for r in self._rows(col(FeedAlert.status).in_(ACTIVE))]

    def get(self, alert_id: str) -> Alert | None:
        row = self._row(alert_id)
        return None if row is None else to_alert(row, self.feed.name)

    def all(self, feed: str | None = None) -> list[Alert]:
        return [to_alert(r, self.feed.name) for r in self._rows()]

    def save(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.save_one(alert)

    def save_one(self, alert: Alert, **extra: Any) -> FeedAlert:
        row = self._row(alert.id)
        action = action_for(row, alert)
        if row is None:
            row = FeedAlert(feed_id=self.feed.id, **row_values(alert), **extra)
            audit.record(self.session, self.actor, action, row)
        else:
            audit.record(self.session, self.actor, action, row, {**row_values(alert), **extra})
        return row

    def _row(self, uid: str) -> FeedAlert | None:
        return self.session.exec(
            select(FeedAlert).where(FeedAlert.feed_id == self.feed.id, FeedAlert.uid == uid)
        ).first()


# -- reading ----------------------------------------------------------------------------------------
def alert_public(row: FeedAlert, feed: Feed) -> AlertPublic:
    data = row.model_dump(exclude={"id", "feed_id"})
    data["check"], data["column"] = data.pop("check_name"), data.pop("column_name")
    return AlertPublic(feed=feed.name, **data)


def list_alerts(
    session: Session,
    feed: Feed,
    status: str | None = None,
    severity: str | None = None,
    segment: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> AlertPage:
    """Newest first. `status` may also be `active` (open or acknowledged)."""
    query = select(FeedAlert).where(FeedAlert.feed_id == feed.id)
    if status is not None:
        if status not in (*ALERT_STATUSES, "active"):
            raise Invalid(f"status {status!r}: choose one of {', '.join((*ALERT_STATUSES, 'active'))}")
        query = query.where(col(FeedAlert.status).in_(ACTIVE if status == "active" else (status,)))
    if severity is not None:
        if severity not in SEVERITIES:
            raise Invalid(f"severity {severity!r}: choose one of {', '.join(SEVERITIES)}")
        query = query.where(FeedAlert.severity == severity)
    if segment is not None:
        query = query.where(FeedAlert.segment == segment)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(FeedAlert.id).desc()).offset(offset).limit(limit))
    return AlertPage(total=total, alerts=[alert_public(r, feed) for r in rows])


def active_counts(session: Session, feed: Feed) -> dict[str, int]:
    query = (
        select(FeedAlert.severity, func.count())
        .where(FeedAlert.feed_id == feed.id, col(FeedAlert.status).in_(ACTIVE))
        .group_by(FeedAlert.severity)
    )
    return dict(session.exec(query).all())


# -- people acting on alerts ------------------------------------------------------------------------
def get_alert(session: Session, feed: Feed, uid: str) -> FeedAlert:
    row = session.exec(select(FeedAlert).where(FeedAlert.feed_id == feed.id, FeedAlert.uid == uid)).first()
    if row is None:
        raise NotFound(f"feed {feed.name!r} has no alert {uid!r}; list them with GET /feeds/{feed.id}/alerts")
    return row


def find_alert(session: Session, uid: str) -> tuple[Feed, FeedAlert]:
    """An alert by uid alone (uids are unique across feeds), with its feed."""
    row = session.exec(select(FeedAlert).where(FeedAlert.uid == uid)).first()
    if row is None:
        raise NotFound(f"no alert {uid!r}; `crosswalk alerts list` shows the active ones")
    return session.get(Feed, row.feed_id), row


def acknowledge(session: Session, feed: Feed, uid: str, actor: str) -> tuple[FeedAlert, AlertEvent]:
    """Someone is on it: the alert stays active (and is updated by later batches) but stops being 'open'."""
    audit.lock_chain(session)
    alert = to_alert(get_alert(session, feed, uid), feed.name)
    if alert.status != lib.OPEN:
        raise Conflict(f"alert {uid} is {alert.status}; only an open alert can be acknowledged")
    changed = lib.acknowledge(alert, actor, utcnow())
    return StoreAlerts(session, feed, actor).save_one(changed), AlertEvent("acknowledged", changed)


def resolve(session: Session, feed: Feed, uid: str, actor: str) -> tuple[FeedAlert, AlertEvent]:
    """Fixed at the source: closed now; if the next batch still shows the problem, a new alert opens."""
    audit.lock_chain(session)
    alert = to_alert(get_alert(session, feed, uid), feed.name)
    if alert.status == lib.RESOLVED:
        raise Conflict(f"alert {uid} is already resolved")
    changed = lib.resolve(alert, None, utcnow())
    return StoreAlerts(session, feed, actor).save_one(changed, resolved_by=actor), AlertEvent("resolved", changed)
