"""Review claims: a reviewer who opens an item holds it for a short lease, so that a colleague's queue
hands out the next item instead of the same one. A claim never blocks a decision (the item's version
and the override rule guard those); it only steers who looks at what.

Claims are audited rows like every other write; one is renewed only when less than half of its lease
is left, so browsing an item costs a write at most every LEASE_SECONDS / 2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from service import audit
from service.store.review import ReviewClaim
from service.store.tables import SourceItem

LEASE_SECONDS = 300  # long enough to read an item and decide, short enough that a closed tab frees it
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as store.tables.utcnow: ISO strings that sort as times


def _at(seconds_from_now: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).strftime(_FORMAT)


def claim(session: Session, item: SourceItem, holder: str) -> bool:
    """Hold `item` for `holder` unless a colleague's lease on it is still running; True when held."""
    row = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).first()
    if row is not None and row.holder == holder and row.expires_at > _at(LEASE_SECONDS / 2):
        return True  # fresh enough: no write
    audit.lock_chain(session)  # then read again: two reviewers opening one item at once get one claim
    session.expire_all()
    row = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).first()
    if row is not None and row.holder != holder and row.expires_at > _at():
        return False
    changes = {"holder": holder, "expires_at": _at(LEASE_SECONDS)}
    if row is None:
        row = ReviewClaim(project_id=item.project_id, item_id=item.id, **changes)
        changes = None
    audit.record(session, holder, "claim.take", row, changes)
    return True


def release(session: Session, item: SourceItem, holder: str) -> None:
    """End `holder`'s lease on an item they have decided (a colleague may need it next)."""
    row = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).first()
    if row is not None and row.holder == holder and row.expires_at > _at():
        audit.record(session, holder, "claim.release", row, {"expires_at": _at()})


def held_by_others(holder: str):
    """The ids of items whose lease a colleague holds now (a subquery for the queue)."""
    return select(ReviewClaim.item_id).where(ReviewClaim.holder != holder, ReviewClaim.expires_at > _at())


def holder_of(session: Session, item: SourceItem) -> ReviewClaim | None:
    """The running claim on an item, if any."""
    row = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).first()
    return row if row is not None and row.expires_at > _at() else None
