"""Alert lifecycle: one alert per key, dedup across batches, escalation, acknowledgement, auto-resolve,
and the same behaviour through the SQLite store after a restart."""

from __future__ import annotations

import pytest

from monitors.alerts import (
    ACKNOWLEDGED,
    OPEN,
    RESOLVED,
    Alert,
    InMemoryAlertStore,
    SQLiteAlertStore,
    acknowledge,
    alerts_from_findings,
    process_batch,
)
from monitors.checks.base import Finding


def finding(segment="B", check="unit_change", column="unit[2339-0]", severity="critical", statistic=0.9):
    return Finding(check, column, segment, severity, statistic, 0.1, f"site {segment}: glucose unit changed")


def process(store, batch_id, findings, scored_segments):
    """A scored batch as the service reconciles it: its report's alerts, one per key."""
    return process_batch(store, "labs", batch_id, alerts_from_findings(findings, "labs", batch_id), scored_segments)


def test_one_alert_per_key_worst_finding_speaks():
    findings = [
        finding(check="plausibility", column="date", severity="warning", statistic=0.02),
        finding(check="plausibility", column="date", severity="critical", statistic=0.3),
        finding(),
    ]
    alerts = alerts_from_findings(findings, "labs", "b1")
    assert len(alerts) == 2
    date = next(a for a in alerts if a.column == "date")
    assert date.severity == "critical" and date.statistic == 0.3 and date.details["findings"] == 2


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    return InMemoryAlertStore() if request.param == "memory" else SQLiteAlertStore(tmp_path / "alerts.db")


def test_lifecycle_dedup_escalate_acknowledge_resolve(store):
    events = process(store, "b1", [finding(severity="warning")], {"*", "A", "B"})
    assert [e.kind for e in events] == ["opened"]
    first = events[0].alert

    events = process(store, "b2", [finding(severity="warning", statistic=0.95)], {"*", "A", "B"})
    assert [e.kind for e in events] == ["updated"]  # same key: not re-raised
    assert events[0].alert.id == first.id and events[0].alert.occurrences == 2 and events[0].alert.statistic == 0.95

    store.save([acknowledge(store.get(first.id), by="ops@site-b")])
    assert store.get(first.id).status == ACKNOWLEDGED

    events = process(store, "b3", [finding(severity="critical")], {"*", "A", "B"})
    assert [e.kind for e in events] == ["escalated"]
    assert events[0].alert.status == OPEN and events[0].alert.severity == "critical"  # worse: needs eyes again

    events = process(store, "b4", [], {"*", "A"})  # site B not in this batch: stays open
    assert events == [] and store.get(first.id).status == OPEN

    events = process(store, "b5", [], {"*", "A", "B"})  # B clean: auto-resolve
    assert [e.kind for e in events] == ["resolved"]
    resolved = store.get(first.id)
    assert resolved.status == RESOLVED and resolved.resolved_batch == "b5" and resolved.occurrences == 3

    events = process(store, "b6", [finding()], {"*", "A", "B"})  # recurrence: a new alert
    assert [e.kind for e in events] == ["opened"] and events[0].alert.id != first.id
    assert len(store.all("labs")) == 2 and store.active("other-feed") == []


def test_alerts_raised_outside_the_findings_get_a_uid_and_their_batch(store):
    """Structural checks and mapping drift build their Alerts themselves: the batch stamps them."""
    made = [Alert("labs", f"site={s}", "conformance", "OBX-8 table_value", "warning", 0.5, 0.0, "x") for s in "AB"]
    events = process_batch(store, "labs", "7", made, {"*"})
    assert [(e.alert.first_batch, e.alert.last_batch) for e in events] == [("7", "7")] * 2
    uids = {e.alert.id for e in events}
    assert len(uids) == 2 and "" not in uids and {a.id for a in store.all("labs")} == uids


def test_acknowledging_a_resolved_alert_is_refused():
    [alert] = alerts_from_findings([finding()], "labs", "b1")
    from monitors.alerts import resolve

    with pytest.raises(ValueError, match="resolved"):
        acknowledge(resolve(alert), by="me")


def test_sqlite_store_survives_a_restart(tmp_path):
    path = tmp_path / "alerts.db"
    process(SQLiteAlertStore(path), "b1", [finding()], {"*", "B"})
    reopened = SQLiteAlertStore(path)
    [alert] = reopened.active("labs")
    assert alert.message == "site B: glucose unit changed" and alert.details["findings"] == 1
    events = process(reopened, "b2", [finding()], {"*", "B"})
    assert [e.kind for e in events] == ["updated"]
