"""Alerts: one per (feed, segment, check, column), deduplicated across batches, with a lifecycle
open -> acknowledged -> resolved. Pure functions over plain dataclasses, plus an `AlertStore` protocol
with in-memory and SQLite implementations (the service plugs its own store in)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from monitors.checks.base import Finding, severity_rank

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
ACTIVE = (OPEN, ACKNOWLEDGED)
# Events worth telling a human about; an unchanged open alert seen again is an 'updated', and stays quiet.
NOTIFY = ("opened", "escalated", "resolved")

AlertKey = tuple[str, str, str, str]  # (feed, segment, check, column)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Alert:
    feed: str
    segment: str
    check: str
    column: str
    severity: str
    statistic: float
    threshold: float
    message: str
    status: str = OPEN
    id: str = ""
    first_batch: str = ""
    last_batch: str = ""
    first_seen: str = ""
    last_seen: str = ""
    occurrences: int = 1
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    resolved_batch: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def key(self) -> AlertKey:
        return (self.feed, self.segment, self.check, self.column)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Alert:
        return cls(**data)


@dataclass
class AlertEvent:
    kind: str  # opened | escalated | updated | resolved | acknowledged
    alert: Alert

    def to_dict(self) -> dict:
        return {"event": self.kind, "alert": self.alert.to_dict()}


def alert_id(key: AlertKey, first_batch: str) -> str:
    return hashlib.sha1("\x1f".join((*key, first_batch)).encode()).hexdigest()[:16]


def _weight(finding: Finding) -> tuple[int, float]:
    """Which of several findings for one alert key speaks for it: the most severe, then the largest."""
    return severity_rank(finding.severity), abs(finding.statistic)


def alerts_from_findings(
    findings: list[Finding], feed: str, batch_id: str = "", when: str | None = None
) -> list[Alert]:
    """One alert per key: the most severe finding (then the largest statistic) speaks for the key."""
    when = when or now_iso()
    best: dict[AlertKey, Finding] = {}
    counts: dict[AlertKey, int] = {}
    for f in findings:
        key = (feed, f.segment, f.check, f.column)
        counts[key] = counts.get(key, 0) + 1
        old = best.get(key)
        if old is None or _weight(f) > _weight(old):
            best[key] = f
    return [
        Alert(
            feed=feed,
            segment=f.segment,
            check=f.check,
            column=f.column,
            severity=f.severity,
            statistic=f.statistic,
            threshold=f.threshold,
            message=f.message,
            id=alert_id(key, batch_id),
            first_batch=batch_id,
            last_batch=batch_id,
            first_seen=when,
            last_seen=when,
            details={**_jsonable(f.details), "p_value": f.p_value, "q_value": f.q_value, "findings": counts[key]},
        )
        for key, f in best.items()
    ]


def _jsonable(value):
    """numpy scalars and tuples out, so alerts serialise with plain json."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def reconcile(
    active: list[Alert],
    candidates: list[Alert],
    batch_id: str,
    scored_segments: set[str],
    when: str | None = None,
) -> list[AlertEvent]:
    """The lifecycle step for one batch. `active`: open/acknowledged alerts of the feed; `candidates`: this
    batch's alerts. Same key still firing -> updated (escalated if more severe); new key -> opened; an active
    alert whose segment was scored in this batch and did not fire -> resolved."""
    when = when or now_iso()
    by_key = {a.key: a for a in active if a.status in ACTIVE}
    events = []
    for new in candidates:
        old = by_key.pop(new.key, None)
        if old is None:
            events.append(AlertEvent("opened", new))
            continue
        escalated = severity_rank(new.severity) > severity_rank(old.severity)
        updated = replace(
            old,
            severity=max(old.severity, new.severity, key=severity_rank),
            statistic=new.statistic,
            threshold=new.threshold,
            message=new.message,
            last_batch=batch_id,
            last_seen=when,
            occurrences=old.occurrences + 1,
            details=new.details,
            status=OPEN if escalated else old.status,  # an acknowledged alert that got worse needs eyes again
        )
        events.append(AlertEvent("escalated" if escalated else "updated", updated))
    for old in by_key.values():
        if old.segment in scored_segments:
            events.append(AlertEvent("resolved", resolve(old, batch_id, when)))
    return events


def acknowledge(alert: Alert, by: str, when: str | None = None) -> Alert:
    if alert.status == RESOLVED:
        raise ValueError(f"alert {alert.id} is resolved; nothing to acknowledge")
    return replace(alert, status=ACKNOWLEDGED, acknowledged_by=by, acknowledged_at=when or now_iso())


def resolve(alert: Alert, batch_id: str | None = None, when: str | None = None) -> Alert:
    return replace(alert, status=RESOLVED, resolved_at=when or now_iso(), resolved_batch=batch_id)


# ---- persistence ------------------------------------------------------------------------------------------------


class AlertStore(Protocol):
    def active(self, feed: str) -> list[Alert]: ...

    def save(self, alerts: list[Alert]) -> None: ...

    def get(self, alert_id: str) -> Alert | None: ...

    def all(self, feed: str | None = None) -> list[Alert]: ...


class InMemoryAlertStore:
    def __init__(self) -> None:
        self._alerts: dict[str, Alert] = {}

    def active(self, feed: str) -> list[Alert]:
        return [a for a in self._alerts.values() if a.feed == feed and a.status in ACTIVE]

    def save(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._alerts[alert.id] = alert

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def all(self, feed: str | None = None) -> list[Alert]:
        return [a for a in self._alerts.values() if feed is None or a.feed == feed]


class SQLiteAlertStore:
    """One row per alert, the alert as JSON; the key columns are indexed for `active`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, feed TEXT, status TEXT, body TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS alerts_feed_status ON alerts (feed, status)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def _query(self, sql: str, args: tuple = ()) -> list[Alert]:
        with self._lock, self._connect() as db:
            return [Alert.from_dict(json.loads(row[0])) for row in db.execute(sql, args)]

    def active(self, feed: str) -> list[Alert]:
        return self._query("SELECT body FROM alerts WHERE feed = ? AND status IN (?, ?)", (feed, *ACTIVE))

    def save(self, alerts: list[Alert]) -> None:
        rows = [(a.id, a.feed, a.status, json.dumps(a.to_dict())) for a in alerts]
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO alerts (id, feed, status, body) VALUES (?, ?, ?, ?)", rows)

    def get(self, alert_id: str) -> Alert | None:
        found = self._query("SELECT body FROM alerts WHERE id = ?", (alert_id,))
        return found[0] if found else None

    def all(self, feed: str | None = None) -> list[Alert]:
        if feed is None:
            return self._query("SELECT body FROM alerts ORDER BY rowid")
        return self._query("SELECT body FROM alerts WHERE feed = ? ORDER BY rowid", (feed,))


def _stamped(alert: Alert, batch_id: str, when: str) -> Alert:
    """A candidate as this batch raises it: alerts made outside `alerts_from_findings` (structural checks,
    mapping drift) get their id and batches here, so every stored alert has a uid and names its batch."""
    return replace(
        alert,
        id=alert.id or alert_id(alert.key, batch_id),
        first_batch=alert.first_batch or batch_id,
        last_batch=alert.last_batch or batch_id,
        first_seen=when,
        last_seen=when,
    )


def process_batch(
    store: AlertStore,
    feed: str,
    batch_id: str,
    alerts: list[Alert],
    scored_segments: set[str],
    when: str | None = None,
) -> list[AlertEvent]:
    """One batch's alerts (`MonitorReport.alerts`: one per key) -> stored alert changes; returns every event
    (notify those in NOTIFY). `when` stamps them with the caller's clock."""
    when = when or now_iso()
    candidates = [_stamped(a, batch_id, when) for a in alerts]
    events = reconcile(store.active(feed), candidates, batch_id, scored_segments, when)
    store.save([e.alert for e in events])
    return events
