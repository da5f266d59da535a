"""The review queue: a project's items ordered by the expected value of deciding them, with filters.

Expected value = frequency x P(the top suggestion is wrong) = 1 - its fused score: the records a
decision keeps from being mis-mapped. Items without suggestions count as certainly unmapped (1).
Everything is one SQL query (with a join to each item's rank-1 suggestion), so a page renders in
milliseconds at any project size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, func, literal, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from models.items import WEAK
from service import crud
from service.claims import held_by_others
from service.store.tables import Project, SourceItem, Status, Suggestion

PAGE_SIZE = 50
# What still needs someone: a rejection means "none of these candidates" and stays until someone remaps
# it or marks it unmappable; a four-eyes proposal waits for a second reviewer (never its proposer).
OPEN = (Status.new, Status.suggested, Status.flagged, Status.rejected, Status.pending)
STATUS_CHOICES = {
    "open": "to review (new, suggested, flagged, rejected, waiting for a second reviewer)",
    "all": "all",
    **{s.value: s.value for s in Status},
}
# Confidence bands of the top suggestion's fused probability.
BANDS = {
    "weak": "weak: no confident match (< 0.5 or no candidate)",
    "high": "high (>= 0.8)",
    "medium": "medium (0.5-0.8)",
    "low": "low (< 0.5)",
    "none": "no suggestion",
}
HIGH, MEDIUM = 0.8, 0.5


@dataclass(frozen=True)
class Filters:
    status: str = "open"
    reviewer: str = ""
    band: str = ""
    domain: str = ""
    viewer: str = ""  # who looks: their colleagues' claimed items and their own proposals are skipped

    @classmethod
    def parse(cls, values: Any, viewer: str = "") -> Filters:
        """From query or form fields; unknown values fall back to the defaults, never an error page."""
        status = values.get("status") or "open"
        band = values.get("band") or ""
        return cls(
            status=status if status in STATUS_CHOICES else "open",
            reviewer=(values.get("reviewer") or "")[:200],
            band=band if band in BANDS else "",
            domain=(values.get("domain") or "")[:200],
            viewer=viewer,
        )

    def query(self, **extra: Any) -> str:
        """The filters (and extras) as a query string, omitting defaults and the viewer."""
        fields = {k: v for k, v in asdict(self).items() if v and k != "viewer" and not (k == "status" and v == "open")}
        fields |= {k: v for k, v in extra.items() if v is not None and v != ""}
        return urlencode(fields)


@dataclass(frozen=True)
class QueueRow:
    item: SourceItem
    top_code: str | None
    top_display: str | None
    top_score: float | None
    value: float

    @property
    def weak(self) -> bool:
        """No confident match (models.items): the badge that tells reviewers to start here."""
        return crud.confidence_of(self.item.suggestion_batch_id, self.top_score) == WEAK


_top = aliased(Suggestion, name="top")


def _value():
    return func.coalesce(SourceItem.frequency, 1) * (literal(1.0) - func.coalesce(_top.score, 0.0))


def _queue(project: Project, filters: Filters):
    value = _value().label("value")
    query = (
        select(SourceItem, _top.code, _top.display, _top.score, value)
        .outerjoin(
            _top,
            and_(_top.item_id == SourceItem.id, _top.batch_id == SourceItem.suggestion_batch_id, _top.rank == 1),
        )
        .where(SourceItem.project_id == project.id)
    )
    return _filtered(query, filters)


def _filtered(query, filters: Filters):
    if filters.status == "open":
        query = query.where(col(SourceItem.status).in_(OPEN))
        if filters.viewer:  # my own proposals wait for someone else
            query = query.where(or_(SourceItem.status != Status.pending, SourceItem.decided_by != filters.viewer))
    elif filters.status != "all":
        query = query.where(SourceItem.status == filters.status)
    if filters.reviewer:
        query = query.where(SourceItem.decided_by == filters.reviewer)
    if filters.domain:
        query = query.where(_domain() == filters.domain)
    if filters.viewer and filters.status in ("open", Status.pending):  # a colleague has it open: the next one
        query = query.where(col(SourceItem.id).not_in(held_by_others(filters.viewer)))
    return _banded(query, filters.band)


def _banded(query, band: str):
    if band == "weak":
        return query.where(crud.with_confidence(WEAK))
    if band == "none":
        return query.where(col(_top.score).is_(None))
    if band == "high":
        return query.where(_top.score >= HIGH)
    if band == "medium":
        return query.where(and_(_top.score >= MEDIUM, _top.score < HIGH))
    if band == "low":
        return query.where(_top.score < MEDIUM)
    return query


def _domain():
    return SourceItem.context["domain"].as_string()


def _ordered(query):
    return query.order_by(_value().desc(), SourceItem.code)


def page(
    session: Session, project: Project, filters: Filters, offset: int = 0, limit: int = PAGE_SIZE
) -> tuple[int, list[QueueRow]]:
    query = _queue(project, filters)
    total = count(session, project, filters)
    rows = session.exec(_ordered(query).offset(offset).limit(limit)).all()
    return total, [QueueRow(item, code, display, score, float(value)) for item, code, display, score, value in rows]


def count(session: Session, project: Project, filters: Filters) -> int:
    """Items in the queue; without the join to the top suggestion unless the confidence band needs it."""
    if filters.band:
        return session.exec(select(func.count()).select_from(_queue(project, filters).subquery())).one()
    query = select(func.count()).select_from(SourceItem).where(SourceItem.project_id == project.id)
    return session.exec(
        _filtered(query, Filters(filters.status, filters.reviewer, "", filters.domain, filters.viewer))
    ).one()


def at(session: Session, project: Project, filters: Filters, position: int) -> tuple[int, QueueRow | None]:
    """The queue's total and its item at `position` (0-based), clamped to the last one."""
    total, rows = page(session, project, filters, max(position, 0), 1)
    if not rows and total:
        total, rows = page(session, project, filters, total - 1, 1)
    return total, rows[0] if rows else None


def row_of(session: Session, project: Project, item: SourceItem) -> QueueRow:
    """One item's queue row, whatever the filters (an item opened by its code)."""
    query = _queue(project, Filters(status="all")).where(SourceItem.id == item.id)
    found, code, display, score, value = session.exec(query).one()
    return QueueRow(found, code, display, score, float(value))


def matches(session: Session, project: Project, filters: Filters, item: SourceItem) -> bool:
    query = _queue(project, filters).where(SourceItem.id == item.id)
    return session.exec(select(func.count()).select_from(query.subquery())).one() > 0


def position_of(session: Session, project: Project, filters: Filters, row: QueueRow) -> int | None:
    """Where an item sits in the filtered queue (for 'next' after opening it by code); None if outside."""
    if not matches(session, project, filters, row.item):
        return None
    value = _value()
    ahead = _queue(project, filters).where(
        or_(value > row.value, and_(value == row.value, SourceItem.code < row.item.code))
    )
    return session.exec(select(func.count()).select_from(ahead.subquery())).one()


def status_counts(session: Session, project: Project) -> dict[str, int]:
    """Items per status, for the counts above the queue (a rejection never vanishes from view)."""
    query = select(SourceItem.status, func.count()).where(SourceItem.project_id == project.id)
    return dict(session.exec(query.group_by(SourceItem.status)).all())


def reviewers(session: Session, project: Project) -> list[str]:
    query = select(SourceItem.decided_by).where(
        SourceItem.project_id == project.id, col(SourceItem.decided_by).is_not(None)
    )
    return sorted(set(session.exec(query.distinct()).all()))


def domains(session: Session, project: Project) -> list[str]:
    query = select(_domain()).where(SourceItem.project_id == project.id).distinct()
    return sorted({d for d in session.exec(query).all() if d})


def band_of(score: float | None) -> str:
    if score is None:
        return "none"
    return "high" if score >= HIGH else "medium" if score >= MEDIUM else "low"
