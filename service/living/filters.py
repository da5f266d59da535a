"""Selecting a project's items by an `ItemFilter` (bulk actions, dual-mapping assignment)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from service.store.errors import NotFound
from service.store.living import ItemAssignment, ItemFilter
from service.store.tables import Project, SourceItem, SuggestionBatch


def select_items(session: Session, project: Project, wanted: ItemFilter) -> list[SourceItem]:
    """The project's items that meet every condition of `wanted`, in code order."""
    query = select(SourceItem).where(SourceItem.project_id == project.id)
    if wanted.statuses is not None:
        query = query.where(col(SourceItem.status).in_([s.value for s in wanted.statuses]))
    if wanted.min_frequency is not None:
        query = query.where(col(SourceItem.frequency) >= wanted.min_frequency)
    if wanted.max_frequency is not None:
        query = query.where(col(SourceItem.frequency) <= wanted.max_frequency)
    if wanted.assignee is not None:
        assigned = select(ItemAssignment.item_id).where(ItemAssignment.assignee == wanted.assignee)
        query = query.where(col(SourceItem.id).in_(assigned))
    items = list(session.exec(query.order_by(SourceItem.code)))
    if wanted.codes is not None:
        known = {i.code for i in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))}
        unknown = [c for c in wanted.codes if c not in known]
        if unknown:
            raise NotFound(f"project {project.name!r} has no source code(s) {', '.join(map(repr, unknown[:10]))}")
        codes = set(wanted.codes)
        items = [i for i in items if i.code in codes]
    if wanted.context:
        items = [i for i in items if all(i.context.get(k) == v for k, v in wanted.context.items())]
    if wanted.not_model_version is not None:
        items = [i for i in items if _model_version(session, i) != wanted.not_model_version]
    return items


def _model_version(session: Session, item: SourceItem) -> str | None:
    batch = session.get(SuggestionBatch, item.suggestion_batch_id) if item.suggestion_batch_id else None
    return batch.model_version if batch else None
