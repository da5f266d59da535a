"""Lineage: from an alert, or a review item, back to the stored messages behind it.

An alert names the batches that opened it and last showed it (`first_batch`, `last_batch`); a batch cut
from messages knows them (`batch_messages`), narrowed to the alert's sending facility where its segment is
one; a conformance alert's findings also name the messages they were found in (those are `flagged`). A
review item is linked to every message that carried its code (`item_messages`). The CLI (`crosswalk
lineage`) and the API (`GET /feeds/{feed}/alerts/{uid}/lineage`) both read this one walk.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from ingest.hl7v2 import message_text
from monitors.profile import ALL
from service import crud
from service.monitoring.messages import batch_messages, item_messages, message_bytes
from service.store.feeds import Feed, FeedAlert
from service.store.messages import ItemMessage, Lineage, LineageMessage, StoredMessage
from service.store.tables import Project

NO_SITE = "(none)"  # how a conformance alert names a message without MSH-4


def alert_lineage(session: Session, feed: Feed, alert: FeedAlert, *, limit: int = 1000, raw: bool = False) -> Lineage:
    """The messages of the batches that opened and last showed `alert`, from its segment's site."""
    batches = sorted({int(b) for b in (alert.first_batch, alert.last_batch) if b.isdigit()})
    site = _site_of(feed, alert.segment)
    found = [m for number in batches for m in batch_messages(session, feed, number) if site is None or m.site == site]
    named = set(alert.details.get("message_sha256s", [])) if alert.check_name == "conformance" else set()
    return Lineage(
        source="alert",
        feed=feed.name,
        alert=alert.uid,
        summary=f"{alert.severity} {alert.check_name} {alert.column_name}: {alert.message}",
        segment=alert.segment,
        batches=batches,
        total=len(found),
        messages=[_entry(m, raw, flagged=m.sha256 in named) for m in found[:limit]],
    )


def item_lineage(session: Session, project: Project, code: str, *, limit: int = 1000, raw: bool = False) -> Lineage:
    """The stored messages that carried a review item's code, newest first."""
    item = crud.get_item(session, project, code)
    found = item_messages(session, item, limit)
    return Lineage(
        source="item",
        summary=f"{item.code} {item.text}".strip(),
        project=project.name,
        code=item.code,
        total=session.exec(select(func.count()).where(ItemMessage.item_id == item.id)).one(),
        messages=[_entry(m, raw) for m in found],
    )


def _site_of(feed: Feed, segment: str) -> str | None:
    """The sending facility an alert's segment stands for; None when it is not one (every message counts)."""
    if segment.startswith("site="):  # conformance alerts: per sending facility
        site = segment.removeprefix("site=")
    elif segment != ALL and feed.contract.get("segment_columns", [])[:1] == ["site"]:
        site = segment  # monitors name a segment by its value in the feed's first segment column
    else:
        return None
    return "" if site == NO_SITE else site


def _entry(message: StoredMessage, raw: bool, flagged: bool = False) -> LineageMessage:
    text = None
    if raw:  # checked against its sha256; FHIR is UTF-8 JSON, HL7 v2 in its MSH-18 character set
        data = message_bytes(message)
        text = message_text(data) if message.format == "hl7v2" else data.decode("utf-8", "replace")
    return LineageMessage.model_validate(message, update={"flagged": flagged, "raw": text})
