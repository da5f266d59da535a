"""Messages in: HL7 v2 and FHIR stored as evidence, their local codes into review, their rows into batches.

The readers are `ingest/`'s; this module keeps what they read. A message is stored (compressed, with its
sha256) before anything else happens to it, once whatever brought it; one that cannot be read becomes a
dead letter with the reason. From stored messages:

- `import_messages`: a project's review items from the local codes of a field (OBX-3 results, OBR-4 orders,
  DG1-3 diagnoses), with frequency and context; each item links to the messages that carried its code, and
  a message counts once per item however often it is imported.
- `score_pending`: the feed's messages not yet in a batch become one monitored batch (`feeds.post_batch`),
  with the structural findings of `ingest.conformance` as alerts counted per sending facility.
- `Listener`: an MLLP listener (`ingest.mllp`) whose store is this one, cutting batches by count or time.

Stored messages, dead letters and item links are append-only evidence written only here (see
`service.store.messages`); review items and batches are written through `audit.record` as everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd
from sqlalchemy import Engine, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ingest import conformance, fhir, hl7v2
from ingest.local_codes import LocalCode, collect_local_codes
from ingest.mllp import GroupCommit, MLLPServer
from monitors.alerts import Alert, AlertEvent
from monitors.contract import Contract
from service import audit
from service.monitoring.feeds import (
    ProfiledBatch,
    ScoredAhead,
    Upload,
    post_batch,
    profile_in_memory,
    score_ahead,
)
from service.store.db import engine_for, read_scope, session_scope
from service.store.errors import Invalid, NotFound
from service.store.feeds import Feed, FeedBatch
from service.store.messages import DeadLetter, ItemMessage, MessageImportResult, StoredMessage
from service.store.tables import Project, SourceItem, utcnow

log = logging.getLogger("crosswalk.messages")
MessageFormat = Literal["hl7v2", "fhir"]
MESSAGE_FORMATS: tuple[str, ...] = get_args(MessageFormat)  # the CLI's and the API's import formats
CONTEXT_TOP = 5  # most frequent values kept per context key (units, value types ...)
EVIDENCE_SHOWN = 10  # message control ids named in an item's context; the item_message links keep them all


# -- the message store ------------------------------------------------------------------------------
def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def message_bytes(row: StoredMessage | DeadLetter) -> bytes:
    """The raw bytes of a stored message, checked against the sha256 kept beside them."""
    raw = zlib.decompress(row.data)
    if hashlib.sha256(raw).hexdigest() != row.sha256:
        raise Invalid(f"stored message {row.id}: bytes do not match their sha256; the store was altered")
    return raw


def _header(raw: bytes, fmt: str) -> dict[str, str]:
    if fmt == "fhir":
        documents = fhir.read_documents(raw)
        first = documents[0] if documents else None
        return {"control_id": first.document_id if first else "", "message_type": first.resource_type if first else ""}
    message = hl7v2.parse_message(raw)
    return {"control_id": message.control_id, "message_type": message.message_type, "site": message.site}


_HEADER_LENGTHS = {"control_id": 200, "message_type": 40, "site": 200}  # StoredMessage's column sizes


def store_message(
    session: Session, raw: bytes, *, fmt: str = "hl7v2", origin: str, feed_id: int | None = None
) -> tuple[StoredMessage, bool]:
    """Keep `raw` (once: a message already held by sha256 is returned as it is); True when it is new."""
    return store_messages(session, [raw], fmt=fmt, origin=origin, feed_id=feed_id)[0]


def store_messages(
    session: Session, raws: Sequence[bytes], *, fmt: str = "hl7v2", origin: str, feed_id: int | None = None
) -> list[tuple[StoredMessage, bool]]:
    """`store_message` for many messages in one statement: a row per message, and whether it is new (a
    message held already, or given twice, is stored once)."""
    stored = store_message_ids(session, raws, fmt=fmt, origin=origin, feed_id=feed_id)
    query = select(StoredMessage).where(col(StoredMessage.id).in_({ref for ref, _ in stored}))
    rows = {row.id: row for row in session.exec(query)}
    return [(rows[ref], new) for ref, new in stored]


def store_message_ids(
    session: Session, raws: Sequence[bytes], *, fmt: str = "hl7v2", origin: str, feed_id: int | None = None
) -> list[tuple[int, bool]]:
    """Keep `raws` with one SELECT and one multi-row INSERT: each one's row id, and whether it is new.

    Core statements, not ORM objects: this is the listener's path before every ACK, where building and
    flushing one object per message cost more than the commit itself."""
    digests = [hashlib.sha256(raw).hexdigest() for raw in raws]
    known = select(StoredMessage.sha256, StoredMessage.id).where(col(StoredMessage.sha256).in_(set(digests)))
    held: dict[str, int] = dict(session.exec(known).all())
    values: dict[str, dict[str, Any]] = {}  # the new ones, once each, in arrival order
    received_at = utcnow()
    new: list[bool] = []
    for raw, digest in zip(raws, digests, strict=True):
        new.append(digest not in held and digest not in values)
        if not new[-1]:
            continue
        header = {k: v[: _HEADER_LENGTHS[k]] for k, v in _header(raw, fmt).items()}
        values[digest] = dict(
            sha256=digest,
            format=fmt,
            feed_id=feed_id,
            origin=origin[:400],
            received_at=received_at,
            size=len(raw),
            data=compress(raw),
            **{"control_id": "", "message_type": "", "site": "", **header},
        )
    if values:
        table = StoredMessage.__table__
        statement = insert(table).returning(table.c.sha256, table.c.id)  # matched back by sha256
        held.update((digest, ref) for digest, ref in session.connection().execute(statement, list(values.values())))
    return [(held[digest], first) for digest, first in zip(digests, new, strict=True)]


def store_dead_letter(
    session: Session, raw: bytes, reason: str, *, origin: str, feed_id: int | None = None, control_id: str = ""
) -> DeadLetter:
    row = DeadLetter(
        feed_id=feed_id,
        origin=origin[:400],
        sha256=hashlib.sha256(raw).hexdigest(),
        control_id=control_id[:200],
        reason=reason,
        size=len(raw),
        data=compress(raw),
    )
    session.add(row)
    session.flush()
    return row


class EngineStore:
    """The listener's store and dead-letter store: each call is its own committed transaction, so a
    message is durable in the database before the listener acknowledges it. `commit` stores many in one
    (the listener groups the messages arriving together with `ingest.mllp.GroupCommit`)."""

    def __init__(self, engine: Engine, feed: Feed, origin: str = "mllp", fmt: str = "hl7v2") -> None:
        self.engine, self.feed_id, self.origin, self.fmt = engine, feed.id, origin, fmt

    def __call__(self, raw: bytes) -> int:
        return self.commit([raw])[0]

    def commit(self, raws: list[bytes]) -> list[int]:
        """Store `raws` in one transaction; their row ids."""
        for attempt in range(2):
            try:
                with session_scope(self.engine) as session:
                    stored = store_message_ids(session, raws, fmt=self.fmt, origin=self.origin, feed_id=self.feed_id)
                    return [ref for ref, _ in stored]
            except IntegrityError:  # one was stored by another connection meanwhile: now it is held
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def dead_letter(self, raw: bytes, reason: str) -> int:
        with session_scope(self.engine) as session:
            return store_dead_letter(session, raw, reason, origin=self.origin, feed_id=self.feed_id).id


def list_dead_letters(session: Session, feed: Feed | None, limit: int = 100) -> list[DeadLetter]:
    query = select(DeadLetter).order_by(col(DeadLetter.id).desc()).limit(limit)
    if feed is not None:
        query = query.where(DeadLetter.feed_id == feed.id)
    return list(session.exec(query))


# -- reading stored messages back into rows ---------------------------------------------------------
def rows_of(stored: Sequence[StoredMessage]) -> tuple[list[dict], list[hl7v2.Hl7Message]]:
    """Flat rows of stored messages (every row names its message's sha256) and the HL7 v2 messages read."""
    rows: list[dict] = []
    messages: list[hl7v2.Hl7Message] = []
    for index, row in enumerate(stored):
        raw = message_bytes(row)
        if row.format == "fhir":
            rows += [r for document in fhir.read_documents(raw) for r in document.rows]
            continue
        message = hl7v2.parse_message(raw, index=index)
        messages.append(message)
        if message.ok and message.parsed is not None:
            rows += hl7v2.flatten(message)
    return rows, messages


# -- local codes into a project -----------------------------------------------------------------------
@dataclass
class CodeImport:
    """What a message import did: review items created and updated, and what was left out and why."""

    messages: int = 0  # read
    stored: int = 0  # new to the store
    dead_letters: list[str] = field(default_factory=list)  # one reason each
    codes: int = 0  # local codes found in the field
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    already_coded: int = 0  # local codes the sender also gave in LOINC/SNOMED/ICD...: left out
    already_coded_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def public(self) -> MessageImportResult:
        return MessageImportResult(
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            total=self.codes,
            messages=self.messages,
            stored=self.stored,
            dead_letters=self.dead_letters,
            already_coded=self.already_coded,
        )


def read_upload(data: bytes, fmt: str, name: str) -> tuple[list[bytes], list[tuple[bytes, str]]]:
    """A file's messages (raw bytes each) and its unreadable parts (raw, reason naming file and line)."""
    if fmt not in MESSAGE_FORMATS:
        raise Invalid(f"unknown message format {fmt!r}; one of {', '.join(MESSAGE_FORMATS)}")
    good: list[bytes] = []
    bad: list[tuple[bytes, str]] = []
    if fmt == "fhir":
        for document in fhir.read_documents(data):
            if document.ok:
                good.append(document.raw)
            else:
                bad.append((document.raw, f"{name}:{document.line}: {document.error}"))
        return good, bad
    for message in hl7v2.read_messages(data):
        message.parsed  # noqa: B018 - parse now: a message python-hl7 cannot read is a dead letter, not a row
        if message.ok:
            good.append(message.raw)
        else:
            bad.append((message.raw, f"{name}:{message.line}: {message.error}"))
    return good, bad


def import_messages(
    session: Session, project: Project, uploads: Sequence[Upload], fmt: str, field_name: str | None, actor: str
) -> CodeImport:
    """Store the uploads' messages, then add the local codes of `field_name` to the project's review items."""
    result = CodeImport()
    stored: list[StoredMessage] = []
    for upload in uploads:
        good, bad = read_upload(upload.data, fmt, upload.filename)
        result.messages += len(good) + len(bad)
        for raw, reason in bad:
            store_dead_letter(session, raw, reason, origin=f"file:{upload.filename}")
            result.dead_letters.append(reason)
        for raw in good:
            row, new = store_message(session, raw, fmt=fmt, origin=f"file:{upload.filename}")
            result.stored += new
            stored.append(row)
    if not stored and not result.dead_letters:
        raise Invalid(f"no {fmt} messages in {', '.join(u.filename for u in uploads)}")
    rows, _ = rows_of(list({row.id: row for row in stored}.values()))
    add_local_codes(session, project, rows, {row.sha256: row.id for row in stored}, field_name, actor, result)
    return result


def add_local_codes(
    session: Session,
    project: Project,
    rows: list[dict],
    message_ids: dict[str, int],
    field_name: str | None,
    actor: str,
    result: CodeImport | None = None,
) -> CodeImport:
    """Local codes of `rows` into review items: new codes created, known ones gain the frequency of
    messages not yet linked to them (a message imported twice counts once) and their context is merged."""
    result = result or CodeImport()
    found = collect_local_codes(rows, field_name, include_coded=True, max_messages=len(rows) + 1)
    by_code: dict[str, list[LocalCode]] = defaultdict(list)
    for code in found:
        if code.already_coded:
            result.already_coded += 1
            if len(result.already_coded_examples) < 10:
                result.already_coded_examples.append(f"{code.code} ({code.already_coded} {code.standard_code})")
            continue
        by_code[(code.code or code.text)[:200]].append(code)
    result.codes += len(by_code)
    items = {i.code: i for i in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))}
    for key, codes in by_code.items():
        _add_code(session, project, items.get(key), key, codes, rows, message_ids, field_name, actor, result)
    return result


def _add_code(session, project, item, key, codes, rows, message_ids, field_name, actor, result) -> None:
    digests = {d for c in codes for d in c.message_sha256s if d in message_ids}
    linked = set() if item is None else _linked_digests(session, item)
    new = digests - linked
    if item is not None and not new:
        result.unchanged += 1
        return
    if new != digests:  # some messages were counted before: count only the others
        fresh = [r for r in rows if r.get("message_sha256") in new]
        codes = [
            c
            for c in collect_local_codes(fresh, field_name, include_coded=True, max_messages=len(fresh) + 1)
            if (c.code or c.text)[:200] == key and not c.already_coded
        ] or codes
    frequency = sum(c.frequency for c in codes)
    context = _context(codes)
    # the evidence in the item's own context too, so every view of the item shows where it came from
    control_ids = list(dict.fromkeys(i for c in codes for i, d in zip(c.message_ids, c.message_sha256s) if d in new))
    earlier = [i for i in (item.context.get("message_control_ids", "") if item else "").split(", ") if i]
    shown = list(dict.fromkeys(control_ids + earlier))[:EVIDENCE_SHOWN]
    context["messages"] = str(len(linked) + len(new))
    context["message_control_ids"] = ", ".join(shown)
    if item is None:
        item = SourceItem(
            project_id=project.id, code=key, text=codes[0].text or key, frequency=frequency, context=context
        )
        audit.record(session, actor, "item.import", item)
        result.created += 1
    else:
        changes = {"frequency": (item.frequency or 0) + frequency, "context": _merge_context(item.context, context)}
        audit.record(session, actor, "item.reimport", item, changes)
        result.updated += 1
    link_items(session, item, [message_ids[d] for d in sorted(new)])


def _linked_digests(session: Session, item: SourceItem) -> set[str]:
    query = select(StoredMessage.sha256).join(ItemMessage, col(ItemMessage.message_id) == StoredMessage.id)
    return set(session.exec(query.where(ItemMessage.item_id == item.id)))


def link_items(session: Session, item: SourceItem, message_ids: Iterable[int]) -> None:
    for message_id in message_ids:
        session.add(ItemMessage(item_id=item.id, message_id=message_id))
    session.flush()


def _context(codes: list[LocalCode]) -> dict[str, str]:
    """Review context as plain strings (the review item's context is a flat string map)."""
    merged: dict[str, Counter] = defaultdict(Counter)
    examples: list[str] = []
    numbers: list[float] = []
    for code in codes:
        for key, counter in code.context.items():
            merged[key].update(counter)
        examples += [v for v in code.example_values if v not in examples]
        if code.numeric_min is not None:
            numbers += [code.numeric_min, code.numeric_max]
    context = {
        key: ", ".join(f"{v} ({n})" for v, n in counter.most_common(CONTEXT_TOP)) for key, counter in merged.items()
    }
    first = codes[0]
    context.update(
        field=first.field,
        coding_system=", ".join(sorted({c.system for c in codes if c.system})) or "(none)",
        sites=", ".join(sorted({c.site for c in codes if c.site})) or "(none)",
    )
    if examples:
        context["example_values"] = ", ".join(examples[:CONTEXT_TOP])
    if numbers:
        context["numeric_range"] = f"{min(numbers):g} .. {max(numbers):g}"
    if len({t for c in codes for t in c.texts}) > 1:
        texts = Counter()
        for c in codes:
            texts.update(c.texts)
        context["texts"] = ", ".join(f"{t} ({n})" for t, n in texts.most_common(CONTEXT_TOP))
    return context


_COUNTED = re.compile(r"^(.*) \((\d+)\)$")


def _counts(text: str) -> Counter | None:
    """ "mg/dL (12), g/L (3)" -> its counts; None when the value is not such a list."""
    counts: Counter = Counter()
    for part in text.split(", "):
        match = _COUNTED.match(part)
        if match is None:
            return None
        counts[match[1]] += int(match[2])
    return counts


def _merge_context(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """New context over old; counted values (units, value types ...) add up across imports."""
    merged = {**old, **new}
    for key, value in new.items():
        before, after = _counts(old.get(key, "")), _counts(value)
        if before and after:
            merged[key] = ", ".join(f"{v} ({n})" for v, n in (before + after).most_common(CONTEXT_TOP))
    if "numeric_range" in old and "numeric_range" in new:
        ends = [float(x) for text in (old["numeric_range"], new["numeric_range"]) for x in text.split(" .. ")]
        merged["numeric_range"] = f"{min(ends):g} .. {max(ends):g}"
    if "example_values" in old and "example_values" in new:
        examples = list(dict.fromkeys(old["example_values"].split(", ") + new["example_values"].split(", ")))
        merged["example_values"] = ", ".join(examples[:CONTEXT_TOP])
    return merged


def item_messages(session: Session, item: SourceItem, limit: int = 50) -> list[StoredMessage]:
    """The stored messages that carried an item's code, newest first."""
    query = select(StoredMessage).join(ItemMessage, col(ItemMessage.message_id) == StoredMessage.id)
    query = query.where(ItemMessage.item_id == item.id).order_by(col(StoredMessage.id).desc()).limit(limit)
    return list(session.exec(query))


# -- batches from messages ----------------------------------------------------------------------------
def pending(session: Session, feed: Feed, limit: int) -> list[StoredMessage]:
    query = select(StoredMessage).where(StoredMessage.feed_id == feed.id, col(StoredMessage.batch_number).is_(None))
    return list(session.exec(query.order_by(StoredMessage.id).limit(limit)))


def pending_count(session: Session, feed: Feed) -> int:
    query = select(func.count()).where(StoredMessage.feed_id == feed.id, col(StoredMessage.batch_number).is_(None))
    return session.exec(query).one()


def rows_upload(rows: list[dict], name: str, columns: Iterable[str] = ()) -> Upload:
    """Flat rows as a CSV upload, the shape `feeds.post_batch` reads (and a feed's reference). `columns` that
    no row has are added empty: a batch of some message types still has all of its feed's columns."""
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return Upload(name, buffer.getvalue().encode())


def conformance_alerts(feed: Feed, messages: list[hl7v2.Hl7Message]) -> tuple[list[Alert], set[str]]:
    """Structural findings as alerts, one per site, rule and location, with the share of that site's messages
    it affected; and the sites checked (an alert of a checked site that no longer fires is resolved)."""
    findings = conformance.check_all(messages)
    sent = conformance.messages_by_site(messages)
    by_key: dict[tuple, list[conformance.Finding]] = defaultdict(list)
    for finding in findings:
        location = finding.location.split("[")[0] + (finding.location.split("]")[1] if "]" in finding.location else "")
        by_key[(finding.site, finding.rule, location)].append(finding)
    alerts = []
    for (site, rule, location), hits in by_key.items():
        affected = len({f.message_sha256 for f in hits})
        severity = (
            "critical"
            if any(f.severity == "error" for f in hits) and rule == "unreadable"
            else ("warning" if any(f.severity == "error" for f in hits) else "info")
        )
        alerts.append(
            Alert(
                feed=feed.name,
                segment=f"site={site or '(none)'}",
                check="conformance",
                column=f"{location} {rule}",
                severity=severity,
                statistic=affected / max(sent.get(site, 0), 1),
                threshold=0.0,
                message=f"{affected} of {sent.get(site, 0)} messages from {site or 'a site'}: {hits[0].detail}",
                details={
                    "rule": rule,
                    "location": location,
                    "findings": len(hits),
                    "message_control_ids": sorted({f.message_control_id for f in hits})[:20],
                    "message_sha256s": sorted({f.message_sha256 for f in hits})[:20],  # ids may repeat; these do not
                },
            )
        )
    return alerts, {f"site={site or '(none)'}" for site in sent}


@dataclass
class PreparedBatch:
    """Waiting messages read back into rows and checked: the slow part, done outside the write transaction."""

    message_ids: list[int]
    digests: dict[str, int]  # sha256 -> stored message id
    rows: list[dict]
    alerts: list[Alert]
    sites: set[str]
    profiled: ProfiledBatch  # the rows profiled under the feed's contract
    scored: ScoredAhead | None = None  # the monitors run on the profile before the write lock


def prepare(feed: Feed, stored: list[StoredMessage]) -> PreparedBatch | None:
    """Parse, flatten and check stored messages (no database work: it runs outside any transaction)."""
    if not stored:
        return None
    rows, messages = rows_of(stored)
    alerts, sites = conformance_alerts(feed, messages)
    name = f"messages-{stored[0].id}-{stored[-1].id}.csv"
    profiled = profile_in_memory(feed, rows_upload(rows, name, Contract.from_dict(feed.contract).names()))
    return PreparedBatch([r.id for r in stored], {r.sha256: r.id for r in stored}, rows, alerts, sites, profiled)


def score_pending(
    session: Session,
    home: Path,
    feed: Feed,
    actor: str,
    *,
    limit: int = 1000,
    project: Project | None = None,
    prepared: PreparedBatch | None = None,
) -> tuple[FeedBatch, list[AlertEvent], CodeImport | None] | None:
    """The feed's stored messages not yet in a batch (at most `limit`, oldest first) as one monitored batch;
    each message is stamped with the batch in the same transaction, so none is ever scored twice.

    `prepared` (read in an earlier transaction) is used when its messages are all still waiting."""
    # Take the store's write lock before reading which messages wait: a cut another worker or the listener
    # committed meanwhile is then seen here, so no message is scored in two batches.
    audit.lock_chain(session)
    messages = StoredMessage.__table__
    if prepared is not None:
        waiting = messages.c.id.in_(prepared.message_ids) & messages.c.batch_number.is_(None)
        if session.exec(select(func.count()).where(waiting)).one() != len(prepared.message_ids):
            prepared = None
    if prepared is None:
        prepared = prepare(feed, pending(session, feed, limit))
        if prepared is None:
            return None
    batch, events = post_batch(
        session,
        home,
        feed,
        prepared.profiled,
        actor,
        extra_alerts=prepared.alerts,
        extra_segments=prepared.sites,
        evidently=False,  # the listener's stores wait while a batch is scored: keep that short
        scored=prepared.scored,
    )
    # one UPDATE for the batch, not one per message: the store's writers wait while this transaction runs
    stamp = update(messages).where(messages.c.id.in_(prepared.message_ids)).values(batch_number=batch.number)
    session.connection().execute(stamp)
    project = project or (session.get(Project, feed.mapping_project_id) if feed.mapping_project_id else None)
    codes = None
    if project is not None and not project.archived:  # an archived project takes no new codes
        codes = add_local_codes(session, project, prepared.rows, prepared.digests, None, actor)
    session.flush()
    return batch, events, codes


def batch_messages(session: Session, feed: Feed, number: int) -> list[StoredMessage]:
    """The stored messages a batch scored: from an alert's batch back to the messages."""
    query = select(StoredMessage).where(StoredMessage.feed_id == feed.id, StoredMessage.batch_number == number)
    found = list(session.exec(query.order_by(StoredMessage.id)))
    if (
        not found
        and session.exec(select(FeedBatch).where(FeedBatch.feed_id == feed.id, FeedBatch.number == number)).first()
        is None
    ):
        raise NotFound(f"feed {feed.name!r} has no batch {number}")
    return found


# -- the listener ---------------------------------------------------------------------------------------
@dataclass
class Listener:
    """An MLLP listener for one feed: stores before the ACK (the messages arriving together in one
    transaction: `ingest.mllp.GroupCommit`), then cuts monitored batches of `batch_size`
    messages, or of what arrived within `batch_seconds`. Messages left unbatched by a crash are batched
    after the restart (they are in the store; the batch is cut from the store, not from memory).

    Batches are scored in a process of their own (`scoring_process`): parsing, pandas and the monitors
    would otherwise hold this process's interpreter lock while ACKs wait on the event loop."""

    engine: Engine
    home: Path
    feed: Feed
    actor: str
    project: Project | None = None
    host: str = "127.0.0.1"
    port: int = 2575
    batch_size: int = 500
    batch_seconds: float = 60.0
    on_batch: Any = None  # called with (batch, events, codes) after each batch, e.g. to print it
    server: MLLPServer | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once the port is bound (`port` is then set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _oldest: float | None = None
    # messages waiting for a batch as far as this listener knows (the store's count after each cut, plus what
    # arrived since): a cut is asked of the scoring process only when a batch is full or due, never per message
    _waiting: int = 0
    _arrived: int = 0
    _scorer: ProcessPoolExecutor | None = None

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        # leaving the block waits for a batch being scored; batches not yet cut stay waiting in the store
        with scoring_process() as self._scorer:
            # messages a crash left unbatched, scored before new ones arrive (they would share a batch otherwise)
            while await self._cut(True):
                pass
            store = EngineStore(self.engine, self.feed)
            self.server = MLLPServer(
                GroupCommit(store.commit), store.dead_letter, host=self.host, port=self.port, on_accepted=self._accepted
            )
            async with self.server:
                self.port = self.server.port
                self.ready.set()
                batcher = asyncio.create_task(self._batcher())
                try:
                    if stop is None:
                        await self.server.serve_forever()
                    else:
                        await stop.wait()
                finally:
                    batcher.cancel()
                    await asyncio.gather(batcher, return_exceptions=True)
            await self._cut(True)  # what arrived before a clean stop is scored now

    def _accepted(self, messages: list, refs: list) -> None:
        self._oldest = self._oldest or time.monotonic()
        self._waiting += len(refs)
        self._arrived += len(refs)
        self._wake.set()

    async def _batcher(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.batch_seconds, 1.0))
            except TimeoutError:
                pass
            self._wake.clear()
            due = self._oldest is not None and time.monotonic() - self._oldest >= self.batch_seconds
            if not due and self._waiting < self.batch_size:
                continue
            try:
                while await self._cut(due):
                    pass
            except Exception as error:  # noqa: BLE001 - stored messages stay waiting; a later cut tries again
                log.error("feed %s: scoring a batch of messages failed (retrying later): %s", self.feed.name, error)
                await asyncio.sleep(min(self.batch_seconds, 30.0))

    async def _cut(self, due: bool) -> bool:
        """Score one batch in the scoring process when `batch_size` messages wait, or any wait and `due`;
        True when another full batch waits."""
        project_id = self.project.id if self.project else None
        url = self.engine.url.render_as_string(hide_password=False)
        job = (url, self.home, self.feed.id, self.actor, self.batch_size, due, project_id)
        arrived = self._arrived
        outcome, left = await asyncio.get_running_loop().run_in_executor(self._scorer, cut_batch_at, *job)
        self._waiting = left + self._arrived - arrived  # some that arrived meanwhile may be in `left`: harmless
        if outcome is None:
            self._oldest = self._oldest if left else None  # nothing waits: no batch is due
            return False
        self._oldest = time.monotonic() if left else None  # the rest waits at most batch_seconds more
        if self.on_batch is not None:
            self.on_batch(*outcome)
        return left >= self.batch_size


def scoring_process() -> ProcessPoolExecutor:
    """One worker process for batch scoring. Spawned, not forked: the listener's store threads may hold
    locks at fork time, and a spawned child shares nothing with the ACK loop's interpreter."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_exit_with_parent)


def _exit_with_parent() -> None:
    """End the scoring process when its listener dies, even by SIGKILL (a shutdown never reaches it then).
    A batch being scored is one transaction: it rolls back, and its messages wait for the next listener."""

    def watch(sentinel: int) -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)

    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=watch, args=(parent.sentinel,), daemon=True).start()


def cut_batch_at(
    url: str, home: Path, feed_id: int, actor: str, batch_size: int, due: bool, project_id: int | None = None
) -> tuple[tuple[FeedBatch, list[AlertEvent], CodeImport | None] | None, int]:
    """`cut_batch` on the store at `url` (run in the scoring process, which keeps one engine per store)."""
    return cut_batch(engine_for(url), home, feed_id, actor, batch_size, due, project_id)


def cut_batch(
    engine: Engine, home: Path, feed_id: int, actor: str, batch_size: int, due: bool, project_id: int | None = None
) -> tuple[tuple[FeedBatch, list[AlertEvent], CodeImport | None] | None, int]:
    """In its own transaction: score one batch of the feed's waiting messages when `batch_size` wait, or any
    wait and `due`. Returns the batch (None when none was cut) and how many messages still wait."""
    # SQLite has one writer: reading and parsing the messages happens in a read of its own (a snapshot that
    # takes no write lock), so the listener's stores (and their ACKs) wait only for the scoring itself
    with read_scope(engine) as session:
        feed = session.get(Feed, feed_id)
        waiting = pending_count(session, feed)
        if waiting == 0 or (waiting < batch_size and not due):
            return None, waiting
        stored = pending(session, feed, batch_size)
    prepared = prepare(feed, stored)
    with read_scope(engine) as session:  # the monitors too run before the lock, against a snapshot
        prepared.scored = score_ahead(session, home, session.get(Feed, feed_id), prepared.profiled)
    with session_scope(engine) as session:
        feed = session.get(Feed, feed_id)
        project = session.get(Project, project_id) if project_id else None
        outcome = score_pending(session, home, feed, actor, limit=batch_size, project=project, prepared=prepared)
    return outcome, max(waiting - batch_size, 0)
