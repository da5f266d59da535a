"""Which tables are audited: `service.audit.record` writes them, `service.audit.verify` checks them.

A feature's table module registers its audited tables here (`audited(Table, "kind")`), so a new
feature adds tables without editing the audit module, and `verify` still sees every audited row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import SQLModel


@dataclass(frozen=True)
class Audited:
    kind: str  # the entity prefix in audit_event.entity, e.g. "item" in "item:12"
    children: tuple[type[SQLModel], str] | None = None  # rows owned by this one, and their foreign key
    # Columns derived from a secret (a token's hash): left out of audit events, which every auditor reads.
    # `verify` compares the other columns; an old event that still carries one is shown without it.
    hidden: frozenset[str] = frozenset()


AUDITED: dict[type[SQLModel], Audited] = {}


def audited(
    table: type[SQLModel], kind: str, children: tuple[type[SQLModel], str] | None = None, hidden: tuple[str, ...] = ()
) -> None:
    """Declare `table` audited: every write to it must go through `service.audit.record`; `hidden` columns
    (secret-derived) never enter an audit event."""
    taken = {spec.kind: t for t, spec in AUDITED.items()}
    assert taken.get(kind, table) is table, f"audit kind {kind!r} is already {taken[kind].__name__}'s"
    AUDITED[table] = Audited(kind, children, frozenset(hidden))
