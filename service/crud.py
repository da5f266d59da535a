"""Projects, items and API tokens: functions of a session and plain arguments.

Reads are plain queries; every write goes through `audit.record`. Callers own the transaction. A source
item's decision state is written by `service.decisions` alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import and_, exists, func, not_
from sqlmodel import Session, col, delete, select

from models.items import CONFIDENT, WEAK, match_confidence
from service import audit
from service.store.errors import Conflict, Invalid, NotFound
from service.store.feeds import Feed
from service.store.living import BlindChoice, DualAssignment, DualStatus, ItemAssignment, Reopening, SourceUpdate
from service.store.messages import ItemMessage
from service.store.review import ItemComment, ReviewClaim
from service.store.tables import (
    ApiToken,
    AuditEvent,
    CommentPublic,
    ItemPublic,
    Project,
    ProjectCreate,
    ProjectDeleted,
    ProjectPublic,
    Release,
    Role,
    SourceItem,
    Status,
    Suggestion,
    SuggestionBatch,
    SuggestionPublic,
)

T = TypeVar("T")
MAX_STORED_INT = 2**31 - 1  # PostgreSQL's integer columns (ids, versions, frequencies); SQLite's go further
MAX_CODE_LENGTH = 200  # a source or target code, as the store keeps it


# -- projects ---------------------------------------------------------------------------------------
def create_project(
    session: Session, data: ProjectCreate, actor: str, require_target: Callable[[str], None] | None = None
) -> Project:
    """A new project; `require_target` refuses a target terminology that is not loaded (a typo would
    otherwise only show at the first suggestion)."""
    if require_target is not None:
        require_target(data.target_terminology)
    if session.exec(select(Project).where(Project.name == data.name)).first():
        raise Conflict(f"a project named {data.name!r} already exists; choose another name")
    project = Project(**data.model_dump(), created_by=actor)
    project.source_uri = data.source_uri or f"urn:crosswalk:source:{_slug(data.source_system)}"
    audit.record(session, actor, "project.create", project)
    return project


def rename_project(session: Session, project: Project, name: str, actor: str) -> Project:
    name = name.strip()
    if not name:
        raise Invalid("a project name cannot be empty")
    taken = session.exec(select(Project).where(Project.name == name, Project.id != project.id)).first()
    if taken:
        raise Conflict(f"a project named {name!r} already exists; choose another name")
    audit.record(session, actor, "project.rename", project, {"name": name})
    return project


def set_target(
    session: Session, project: Project, target: str, actor: str, require_target: Callable[[str], None]
) -> Project:
    """Point the project at another terminology while nothing has been decided against the old one."""
    require_target(target)
    decided = session.exec(
        select(func.count()).where(SourceItem.project_id == project.id, col(SourceItem.decided_by).is_not(None))
    ).one()
    if decided:
        raise Conflict(
            f"project {project.name!r} has {decided} decided item(s) against {project.target_terminology}; "
            "its target can change only before the first decision (create a new project instead)"
        )
    audit.record(session, actor, "project.set_target", project, {"target_terminology": target})
    return project


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "source"


def stored_id(ref: str) -> int | None:
    """`ref` as a row id, if it is one: ASCII digits (not "¹" or "٣") within the store's integer range."""
    if not (ref.isascii() and ref.isdigit()) or len(ref) > len(str(MAX_STORED_INT)):
        return None
    number = int(ref)
    return number if number <= MAX_STORED_INT else None


def by_id_or_name(session: Session, table: type[T], ref: int | str) -> T | None:
    """A row of a table with `id` and a unique `name`, by either (paths and the CLI accept both)."""
    ref = str(ref)
    row_id = stored_id(ref)
    row = session.get(table, row_id) if row_id is not None else None
    return row or session.exec(select(table).where(table.name == ref)).first()


def get_project(session: Session, ref: int | str) -> Project:
    """A project by id, or by name (the CLI's --project accepts either)."""
    project = by_id_or_name(session, Project, ref)
    if project is None:
        raise NotFound(f"no project {str(ref)!r}; `crosswalk project list` shows the projects")
    return project


def list_projects(session: Session, archived: bool = False) -> list[Project]:
    """The projects in use; `archived` lists the archived ones as well."""
    query = select(Project) if archived else select(Project).where(col(Project.archived).is_(False))
    return list(session.exec(query.order_by(Project.id)))


def archive_project(session: Session, project: Project, actor: str) -> Project:
    """Make a project read-only and hide it from lists; its releases and exports stay readable."""
    if project.archived:
        raise Conflict(f"project {project.name!r} is already archived")
    audit.record(session, actor, "project.archive", project, {"archived": True})
    return project


def unarchive_project(session: Session, project: Project, actor: str) -> Project:
    if not project.archived:
        raise Conflict(f"project {project.name!r} is not archived")
    audit.record(session, actor, "project.unarchive", project, {"archived": False})
    return project


# A project's audited rows, each kind removed before the rows it references.
_PROJECT_ROWS: tuple[tuple[str, type], ...] = (
    ("blind_choices", BlindChoice),
    ("dual_assignments", DualAssignment),
    ("assignments", ItemAssignment),
    ("reopenings", Reopening),
    ("source_updates", SourceUpdate),
    ("comments", ItemComment),
    ("claims", ReviewClaim),
    ("suggestion_batches", SuggestionBatch),
    ("items", SourceItem),
)


def delete_project(session: Session, project: Project, actor: str) -> ProjectDeleted:
    """Remove a project that was never released and every row that belongs to it, each removal audited; the
    project's own event records what was removed. A released project is archived instead: its releases
    are what others cite."""
    releases = session.exec(select(func.count()).where(Release.project_id == project.id)).one()
    if releases:
        raise Conflict(
            f"project {project.name!r} has {releases} release(s) and cannot be deleted; "
            f"archive it instead (`crosswalk project archive -p {project.id}`)"
        )
    items = select(SourceItem.id).where(SourceItem.project_id == project.id)
    removed = {
        "decisions": _count(session, items.where(col(SourceItem.decided_by).is_not(None))),
        "suggestions": _count(
            session, select(Suggestion.id).join(SuggestionBatch).where(SuggestionBatch.project_id == project.id)
        ),
        "message_links": _count(session, select(ItemMessage.id).where(col(ItemMessage.item_id).in_(items))),
    }
    session.exec(delete(ItemMessage).where(col(ItemMessage.item_id).in_(items)))  # links, not the messages
    feeds = session.exec(select(Feed).where(Feed.mapping_project_id == project.id)).all()
    for feed in feeds:
        audit.record(session, actor, "feed.unlink_project", feed, {"mapping_project_id": None})
    removed["feeds_unlinked"] = len(feeds)
    for label, table in _PROJECT_ROWS:
        rows = session.exec(select(table).where(table.project_id == project.id).order_by(table.id)).all()
        for row in rows:
            audit.remove(session, actor, "project.delete", row)
        removed[label] = len(rows)
    audit.remove(session, actor, "project.delete", project, removed)
    return ProjectDeleted(id=project.id, name=project.name, removed=removed)


def _count(session: Session, query) -> int:
    return session.exec(select(func.count()).select_from(query.subquery())).one()


def project_public(session: Session, project: Project) -> ProjectPublic:
    rows = session.exec(
        select(SourceItem.status, func.count()).where(SourceItem.project_id == project.id).group_by(SourceItem.status)
    )
    return ProjectPublic.model_validate(project, update={"counts": dict(rows.all())})


# -- items ------------------------------------------------------------------------------------------
def get_item(session: Session, project: Project, code: str) -> SourceItem:
    item = session.exec(select(SourceItem).where(SourceItem.project_id == project.id, SourceItem.code == code)).first()
    if item is None:
        raise NotFound(f"project {project.name!r} has no source code {code!r}")
    return item


def list_items(
    session: Session,
    project: Project,
    status: Status | None = None,
    offset: int = 0,
    limit: int = 100,
    confidence: str | None = None,
) -> tuple[int, list[SourceItem]]:
    query = select(SourceItem).where(SourceItem.project_id == project.id)
    if status is not None:
        query = query.where(SourceItem.status == status)
    if confidence is not None:
        query = query.where(with_confidence(confidence))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    page = session.exec(
        query.order_by(col(SourceItem.frequency).desc().nulls_last(), SourceItem.code).offset(offset).limit(limit)
    )
    return total, list(page)


def with_confidence(confidence: str):
    """SQL condition: the item was suggested for and its match is `confidence` (models.items.match_confidence:
    WEAK when its current batch has no candidate scoring CONFIDENT or more). Never-suggested items are neither."""
    confident = exists().where(
        Suggestion.item_id == SourceItem.id,
        Suggestion.batch_id == SourceItem.suggestion_batch_id,
        Suggestion.rank == 1,
        Suggestion.score >= CONFIDENT,
    )
    suggested = col(SourceItem.suggestion_batch_id).is_not(None)
    return and_(suggested, not_(confident) if confidence == WEAK else confident)


def confidence_of(suggestion_batch_id: int | None, best: float | None) -> str | None:
    """An item's match confidence from its current best score; None before it was ever suggested for."""
    return None if suggestion_batch_id is None else match_confidence(best)


def confidences(session: Session, project: Project) -> dict[int, str | None]:
    """Every item's match confidence (see confidence_of), by item id, in one query."""
    best = (
        select(SourceItem.id, SourceItem.suggestion_batch_id, Suggestion.score)
        .outerjoin(
            Suggestion,
            and_(
                Suggestion.item_id == SourceItem.id,
                Suggestion.batch_id == SourceItem.suggestion_batch_id,
                Suggestion.rank == 1,
            ),
        )
        .where(SourceItem.project_id == project.id)
    )
    return {item_id: confidence_of(batch_id, score) for item_id, batch_id, score in session.exec(best)}


def current_suggestions(session: Session, item: SourceItem) -> list[Suggestion]:
    if item.suggestion_batch_id is None:
        return []
    query = select(Suggestion).where(Suggestion.item_id == item.id, Suggestion.batch_id == item.suggestion_batch_id)
    return list(session.exec(query.order_by(Suggestion.rank)))


def model_version_of(session: Session, item: SourceItem) -> str | None:
    batch = session.get(SuggestionBatch, item.suggestion_batch_id) if item.suggestion_batch_id else None
    return batch.model_version if batch else None


def item_public(session: Session, item: SourceItem, thread: bool = False) -> ItemPublic:
    """The item as the API shows it; `thread` adds its comments and any open four-eyes disagreement."""
    suggestions = current_suggestions(session, item)
    update: dict[str, Any] = {
        "suggestions": [SuggestionPublic.model_validate(s) for s in suggestions],
        "confidence": confidence_of(item.suggestion_batch_id, suggestions[0].score if suggestions else None),
        "model_version": model_version_of(session, item),
    }
    if thread:
        update["comments"] = [CommentPublic.model_validate(c) for c in comments(session, item)]
        contested = disagreement(session, item)
        update["disagreement"] = contested[0] if contested else None
    return ItemPublic.model_validate(item, update=update)


def latest_decision(session: Session, item: SourceItem) -> AuditEvent | None:
    query = select(AuditEvent).where(
        AuditEvent.entity == audit.entity_of(item), col(AuditEvent.action).startswith("decision.")
    )
    return session.exec(query.order_by(col(AuditEvent.seq).desc()).limit(1)).first()


def comments(session: Session, item: SourceItem) -> list[ItemComment]:
    query = select(ItemComment).where(ItemComment.item_id == item.id).order_by(ItemComment.id)
    return list(session.exec(query))


def disagreement(session: Session, item: SourceItem) -> tuple[dict, dict] | None:
    """A four-eyes disagreement still open on the item: (the first proposal, the counter-proposal)."""
    last = latest_decision(session, item)
    if item.status != Status.pending or last is None or last.action != "decision.counter" or last.before is None:
        return None
    return json.loads(last.before), json.loads(last.after)


def open_dual(session: Session, item: SourceItem) -> DualAssignment | None:
    """The item's dual assignment while it still waits for choices or reconciliation."""
    query = select(DualAssignment).where(DualAssignment.item_id == item.id)
    query = query.where(col(DualAssignment.status).in_([DualStatus.open, DualStatus.disagreed]))
    return session.exec(query).first()


# -- API tokens -------------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: Role, actor: str) -> tuple[ApiToken, str]:
    """A new bearer token; the secret is returned once and only its sha256 is stored."""
    secret = "cw_" + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role, token_hash=hash_token(secret), created_by=actor)
    audit.record(session, actor, "token.create", token)
    return token, secret


def revoke_token(session: Session, token_id: int, actor: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    audit.record(session, actor, "token.revoke", token, {"revoked": True})
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(ApiToken.id)))


def token_for(session: Session, secret: str) -> ApiToken | None:
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).first()
    return token if token and not token.revoked else None
