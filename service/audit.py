"""The one write path for audited state, and the check that the state still matches its history.

`record` changes a row and appends its `audit_event` in the caller's transaction, so state and
history commit (or roll back) together. Each event's `after` is the row's snapshot (child rows as a
digest; secret-derived columns such as a token's hash left out, since every auditor reads events), and
events form a sha256 hash chain. `remove` deletes a row the same way, its event's `after` null. A row of an
archived project is read-only: `record` refuses it. `verify` recomputes the chain and compares every
row with the `after` of its latest event: a row edited, inserted or deleted behind the service's
back, or an event altered or removed, is reported with the first event that no longer holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlmodel import Session, SQLModel, col, delete, select

from service.store.audited import AUDITED
from service.store.errors import Conflict
from service.store.tables import AuditEvent, AuditEventPublic, Project, VerifyResult, utcnow

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "time", "actor", "action", "entity", "project_id", "before", "after", "model_version")
_PG_CHAIN_LOCK = 0x63776175  # "cwau": one advisory lock serialises appends to the chain on PostgreSQL


def canonical(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same data always gives the same bytes to hash."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent) -> str:
    fields = {name: getattr(event, name) for name in HASHED_FIELDS}
    return hashlib.sha256((canonical(fields) + event.prev_hash).encode()).hexdigest()


def entity_of(row: SQLModel) -> str:
    return f"{AUDITED[type(row)].kind}:{row.id}"


def row_id(event: AuditEvent) -> int:
    """The id of the row an event is about (the inverse of `entity_of`)."""
    return int(event.entity.partition(":")[2])


def snapshot(session: Session, row: SQLModel) -> dict[str, Any]:
    """The row as plain JSON data without its hidden (secret-derived) columns, with a digest of its child
    rows (suggestions, release entries)."""
    spec = AUDITED[type(row)]
    data = row.model_dump(mode="json", exclude=set(spec.hidden))
    children = spec.children
    if children:
        table, key = children
        rows = session.exec(select(table).where(getattr(table, key) == row.id).order_by(table.id)).all()
        data["children_sha256"] = hashlib.sha256(
            canonical([r.model_dump(mode="json") for r in rows]).encode()
        ).hexdigest()
    return data


def lock_chain(session: Session) -> None:
    """Serialise writers: on PostgreSQL an advisory lock (SQLite takes its lock at BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text(f"SELECT pg_advisory_xact_lock({_PG_CHAIN_LOCK})"))


def record(
    session: Session,
    actor: str,
    action: str,
    row: SQLModel,
    changes: dict[str, Any] | None = None,
    *,
    children: Sequence[SQLModel] = (),
    model_version: str | None = None,
) -> AuditEvent | None:
    """Apply `changes` to `row` (new or loaded), add `children`, and append the event; no commit.

    Returns None, writing nothing, when the changes leave the row as it was. A row of an archived project
    is read-only: every change but unarchiving it is refused.
    """
    _refuse_archived(session, row, changes)
    lock_chain(session)
    before = snapshot(session, row) if row.id is not None else None
    columns_before = row.model_dump(mode="json")  # hidden columns too: changing only those is still a change
    for name, value in (changes or {}).items():
        setattr(row, name, value)
    unchanged = before is not None and snapshot(session, row) == before
    if unchanged and row.model_dump(mode="json") == columns_before and not children:
        return None
    if before is not None and hasattr(row, "version"):
        row.version = before["version"] + 1
    session.add(row)
    session.flush()
    _add_children(session, row, children)
    return _append(session, actor, action, row, before, snapshot(session, row), model_version)


def remove(
    session: Session, actor: str, action: str, row: SQLModel, removed: dict[str, int] | None = None
) -> AuditEvent:
    """Delete `row` (and its child rows) and append its event, `after` null: `verify` then expects it gone.
    The event's `before` is the row's last state, with `removed` (what went with it, counted) beside it."""
    lock_chain(session)
    before = snapshot(session, row) | ({"removed": removed} if removed is not None else {})
    spec = AUDITED[type(row)].children
    if spec is not None:
        table, key = spec
        session.exec(delete(table).where(getattr(table, key) == row.id))
    session.delete(row)
    session.flush()
    return _append(session, actor, action, row, before, None, None)


def _refuse_archived(session: Session, row: SQLModel, changes: dict[str, Any] | None) -> None:
    project_id = row.id if isinstance(row, Project) else getattr(row, "project_id", None)
    project = session.get(Project, project_id) if project_id is not None else None
    if project is not None and project.archived and changes != {"archived": False}:
        raise Conflict(
            f"project {project.name!r} is archived and read-only; "
            f"`crosswalk project unarchive -p {project.id}` (an admin) makes it writable again"
        )


def _add_children(session: Session, row: SQLModel, children: Iterable[SQLModel]) -> None:
    spec = AUDITED[type(row)].children
    for child in children:
        assert spec is not None and isinstance(child, spec[0]), f"{type(row).__name__} owns no {type(child).__name__}"
        setattr(child, spec[1], row.id)
        session.add(child)
    session.flush()


def _append(
    session: Session,
    actor: str,
    action: str,
    row: SQLModel,
    before: dict | None,
    after: dict | None,
    model_version: str | None,
) -> AuditEvent:
    seq, prev_hash = _tail(session)
    event = AuditEvent(
        seq=seq + 1,
        time=utcnow(),
        actor=actor,
        action=action,
        entity=entity_of(row),
        project_id=row.id if isinstance(row, Project) else getattr(row, "project_id", None),
        before=None if before is None else canonical(before),
        after=None if after is None else canonical(after),
        model_version=model_version,
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    session.flush()
    session.info["audit_tail"] = (session.get_transaction(), event.seq, event.hash)
    return event


def _tail(session: Session) -> tuple[int, str]:
    """The last event's seq and hash; remembered per transaction so a 1,000-row import asks once."""
    cached = session.info.get("audit_tail")
    if cached and cached[0] is session.get_transaction():
        return cached[1], cached[2]
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def rebaseline(connection: Connection, table: str, kind: str, added: dict[str, Any], actor: str) -> None:
    """For a migration that adds columns to an audited table: one `<kind>.migrate` event per existing row
    records its new columns' values (`added`), so `verify` still finds every row as its last event says."""
    ids = [row[0] for row in connection.execute(text(f"SELECT id FROM {table} ORDER BY id"))]
    tail = connection.execute(text("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")).first()
    seq, prev_hash = (tail[0], tail[1]) if tail else (0, GENESIS)
    for found in ids:
        entity = f"{kind}:{found}"
        last = connection.execute(
            text("SELECT after, project_id FROM audit_event WHERE entity = :e ORDER BY seq DESC LIMIT 1"),
            {"e": entity},
        ).first()
        if last is None or last[0] is None:
            continue  # a row without history is already reported by verify; not a migration's to hide
        after = json.loads(last[0])
        if set(added) <= set(after):
            continue
        event = AuditEvent(
            seq=seq + 1,
            time=utcnow(),
            actor=actor,
            action=f"{kind}.migrate",
            entity=entity,
            project_id=last[1],
            before=last[0],
            after=canonical({**after, **added}),
            model_version=None,
            prev_hash=prev_hash,
            hash="",
        )
        event.hash = event_hash(event)
        connection.execute(AuditEvent.__table__.insert().values(**event.model_dump()))
        seq, prev_hash = event.seq, event.hash


# -- reading and verifying --------------------------------------------------------------------------
def history(session: Session, entity: str | None = None, project_id: int | None = None) -> list[AuditEventPublic]:
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if entity is not None:
        query = query.where(AuditEvent.entity == entity)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    return [to_public(e) for e in session.exec(query)]


def to_public(event: AuditEvent) -> AuditEventPublic:
    """The event as auditors see it: hidden columns that an older crosswalk still recorded are left out
    (the stored event is untouched, so the hash chain holds)."""
    return AuditEventPublic(
        **event.model_dump(exclude={"before", "after", "prev_hash", "project_id"}),
        before=_visible(event, _loads(event.before)),
        after=_visible(event, _loads(event.after)),
    )


def _visible(event: AuditEvent, data: dict | None) -> dict | None:
    """`data` without the columns its entity's table hides from the audit log."""
    hidden = _hidden_by_kind().get(event.entity.partition(":")[0], frozenset())
    return None if data is None else {k: v for k, v in data.items() if k not in hidden}


def _hidden_by_kind() -> dict[str, frozenset[str]]:  # read per call: tables register on import
    return {spec.kind: spec.hidden for spec in AUDITED.values()}


def _loads(value: str | None) -> dict | None:
    return None if value is None else json.loads(value)


def verify(session: Session) -> VerifyResult:
    """Check the hash chain, then every audited row against the `after` of its latest event."""
    events = list(session.exec(select(AuditEvent).order_by(AuditEvent.seq)))
    problems = _chain_problems(events)
    latest = {e.entity: e for e in events}
    problems += _state_problems(session, latest)
    first = min((seq for seq, _ in problems), default=None)
    messages = [message for _, message in sorted(problems, key=lambda p: p[0])]
    return VerifyResult(ok=not problems, events=len(events), first_bad_seq=first, problems=messages)


def _chain_problems(events: list[AuditEvent]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    expected_seq, prev_hash = 1, GENESIS
    for event in events:
        if event.seq != expected_seq:
            problems.append((expected_seq, f"event #{expected_seq}: missing (deleted); the log jumps to #{event.seq}"))
        elif event.prev_hash != prev_hash:
            problems.append((event.seq, f"event #{event.seq}: prev_hash does not match event #{event.seq - 1}"))
        if event_hash(event) != event.hash:
            problems.append((event.seq, f"event #{event.seq} ({event.action} {event.entity}): altered, hash mismatch"))
        expected_seq, prev_hash = event.seq + 1, event.hash
    return problems


def _state_problems(session: Session, latest: dict[str, AuditEvent]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    for table in AUDITED:
        for row in session.exec(select(table)):
            entity = entity_of(row)
            seen.add(entity)
            event = latest.get(entity)
            if event is None:
                problems.append((0, f"{entity}: row has no audit event (inserted behind the service's back)"))
            elif _visible(event, _loads(event.after)) != snapshot(session, row):
                problems.append(
                    (event.seq, f"event #{event.seq}: {entity} no longer matches it (row changed directly)")
                )
    for entity, event in latest.items():
        if entity not in seen and event.after is not None:
            problems.append((event.seq, f"event #{event.seq}: {entity} is gone (row deleted directly)"))
    return problems
