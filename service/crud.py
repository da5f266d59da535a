"""Projects, items, decisions and API tokens: functions of a session and plain arguments.

Reads are plain queries; every write goes through `audit.record`. Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.terminology import Concept, Terminology
from service import audit
from service.store.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionRequired, StaleVersion
from service.store.tables import (
    ApiToken,
    AuditEvent,
    DecisionCreate,
    ItemPublic,
    Project,
    ProjectCreate,
    ProjectPublic,
    Role,
    SourceItem,
    Status,
    Suggestion,
    SuggestionBatch,
    SuggestionPublic,
    utcnow,
)

ConceptLookup = Callable[[str], Concept | None]
T = TypeVar("T")


# -- projects ---------------------------------------------------------------------------------------
def create_project(session: Session, data: ProjectCreate, actor: str) -> Project:
    if session.exec(select(Project).where(Project.name == data.name)).first():
        raise Conflict(f"a project named {data.name!r} already exists; choose another name")
    project = Project(**data.model_dump(), created_by=actor)
    project.source_uri = data.source_uri or f"urn:crosswalk:source:{_slug(data.source_system)}"
    audit.record(session, actor, "project.create", project)
    return project


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "source"


def by_id_or_name(session: Session, table: type[T], ref: int | str) -> T | None:
    """A row of a table with `id` and a unique `name`, by either (paths and the CLI accept both)."""
    ref = str(ref)
    row = session.get(table, int(ref)) if ref.isdigit() else None
    return row or session.exec(select(table).where(table.name == ref)).first()


def get_project(session: Session, ref: int | str) -> Project:
    """A project by id, or by name (the CLI's --project accepts either)."""
    project = by_id_or_name(session, Project, ref)
    if project is None:
        raise NotFound(f"no project {str(ref)!r}; `crosswalk project list` shows the projects")
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.exec(select(Project).order_by(Project.id)))


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
    session: Session, project: Project, status: Status | None = None, offset: int = 0, limit: int = 100
) -> tuple[int, list[SourceItem]]:
    query = select(SourceItem).where(SourceItem.project_id == project.id)
    if status is not None:
        query = query.where(SourceItem.status == status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    page = session.exec(query.order_by(col(SourceItem.frequency).desc().nulls_last(), SourceItem.code).offset(offset).limit(limit))
    return total, list(page)


def current_suggestions(session: Session, item: SourceItem) -> list[Suggestion]:
    if item.suggestion_batch_id is None:
        return []
    query = select(Suggestion).where(Suggestion.item_id == item.id, Suggestion.batch_id == item.suggestion_batch_id)
    return list(session.exec(query.order_by(Suggestion.rank)))


def model_version_of(session: Session, item: SourceItem) -> str | None:
    batch = session.get(SuggestionBatch, item.suggestion_batch_id) if item.suggestion_batch_id else None
    return batch.model_version if batch else None


def item_public(session: Session, item: SourceItem) -> ItemPublic:
    suggestions = [SuggestionPublic.model_validate(s) for s in current_suggestions(session, item)]
    return ItemPublic.model_validate(
        item, update={"suggestions": suggestions, "model_version": model_version_of(session, item)}
    )


# -- decisions --------------------------------------------------------------------------------------
def decide(
    session: Session,
    project: Project,
    code: str,
    decision: DecisionCreate,
    actor: str,
    version: int | None,
    lookup: ConceptLookup,
    terminology_version: str | None = None,
) -> SourceItem:
    """Apply a reviewer's decision made against item `version`; a newer item -> StaleVersion (409).

    `terminology_version`: the target terminology's release the decision is made against; kept on
    the item so that a later release can say what it was approved against (service/living).
    """
    audit.lock_chain(session)  # read the item only once no other writer can change it
    item = _item_at(session, project, code, version)
    _refuse_if_dual(session, item)
    changes = _decision_changes(session, project, item, decision, actor, lookup)
    if decision.action in ("approve", "remap", "unmappable"):
        changes["terminology_version"] = terminology_version or _registered_version(session, project)
    elif decision.action == "reject":
        changes["terminology_version"] = None
    audit.record(session, actor, f"decision.{decision.action}", item, changes, model_version=model_version_of(session, item))
    return item


def decide_on_target(
    session: Session,
    project: Project,
    code: str,
    decision: DecisionCreate,
    actor: str,
    version: int | None,
    target_terminology: Callable[[], Terminology],
) -> SourceItem:
    """`decide`, with concepts looked up in the project's target terminology and its release recorded;
    the terminology is loaded only when the decision needs it (reject and flag do not)."""
    release = None if decision.action in ("reject", "flag") else target_terminology().version
    return decide(session, project, code, decision, actor, version, lambda target: target_terminology().get(target), release)


def _registered_version(session: Session, project: Project) -> str | None:
    """The target terminology's latest release the store recorded, for callers that do not say."""
    from service.living.terminology import latest_release

    release = latest_release(session, project.target_terminology)
    return release.version if release else None


def _refuse_if_dual(session: Session, item: SourceItem) -> None:
    """An item under dual independent mapping is decided by its two mappers (or reconciled)."""
    from service.living.dual import open_dual  # living builds on crud: imported when used

    dual = open_dual(session, item)
    if dual is not None:
        raise Conflict(
            f"{item.code!r} is under dual independent mapping ({dual.status}) by {dual.mapper_a} and {dual.mapper_b}; "
            "choose through .../dual/{code}/choices, or reconcile"
        )


def confirm(session: Session, project: Project, code: str, actor: str, version: int | None, comment: str | None) -> SourceItem:
    """Four-eyes: a second, different reviewer turns a pending decision into the final one."""
    audit.lock_chain(session)
    item = _item_at(session, project, code, version)
    if item.status != Status.pending:
        raise Conflict(f"{code!r} is {item.status}, not pending; only a four-eyes proposal can be confirmed")
    if item.decided_by == actor:
        raise Forbidden(f"{actor!r} proposed this mapping; four-eyes needs a different reviewer to confirm it")
    changes = {"status": item.proposed_status, "proposed_status": None, "confirmed_by": actor}
    if comment:
        changes["comment"] = comment
    audit.record(session, actor, "decision.confirm", item, changes, model_version=model_version_of(session, item))
    return item


def revert(session: Session, project: Project, code: str, actor: str, version: int | None, comment: str | None = None) -> SourceItem:
    """Undo the item's latest decision: a new audited decision that restores the state before it.

    Nothing is deleted; the log keeps both the decision and its revert (reverting a revert redoes it).
    """
    audit.lock_chain(session)
    item = _item_at(session, project, code, version)
    _refuse_if_dual(session, item)
    last = _latest_decision(session, item)
    if last is None or last.before is None:
        raise Conflict(f"{code!r} has no decision to undo")
    before = json.loads(last.before)
    changes = {name: before.get(name) for name in DECISION_FIELDS}
    if changes["status"] in (Status.new, Status.suggested):  # suggestions may have arrived since
        changes["status"] = Status.suggested if item.suggestion_batch_id else Status.new
    if comment:
        changes["comment"] = comment
    audit.record(session, actor, "decision.revert", item, changes, model_version=model_version_of(session, item))
    return item


# What a decision sets on an item, and so what a revert puts back.
DECISION_FIELDS = (
    "status", "target_code", "target_display", "relationship", "comment",
    "proposed_status", "decided_by", "decided_at", "confirmed_by", "terminology_version",
)


def _latest_decision(session: Session, item: SourceItem) -> AuditEvent | None:
    query = select(AuditEvent).where(
        AuditEvent.entity == audit.entity_of(item), col(AuditEvent.action).startswith("decision.")
    )
    return session.exec(query.order_by(col(AuditEvent.seq).desc()).limit(1)).first()


def _item_at(session: Session, project: Project, code: str, version: int | None) -> SourceItem:
    item = get_item(session, project, code)
    if version is None:
        raise PreconditionRequired(
            f"say which version of {code!r} you decided on: header If-Match: \"{item.version}\" or body field version"
        )
    if item.version != version:
        current = item_public(session, item).model_dump(mode="json")
        raise StaleVersion(
            f"{code!r} changed since version {version} (now version {item.version}, {item.status} by "
            f"{item.decided_by or 'nobody'}); reload it and decide again",
            {"current": current},
        )
    return item


def _decision_changes(
    session: Session, project: Project, item: SourceItem, decision: DecisionCreate, actor: str, lookup: ConceptLookup
) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "decided_by": actor,
        "decided_at": utcnow(),
        "confirmed_by": None,
        "proposed_status": None,
        "comment": decision.comment,
    }
    action = decision.action
    if action in ("reject", "flag"):
        changes["status"] = Status.rejected if action == "reject" else Status.flagged
        if action == "reject":
            changes.update(target_code=None, target_display=None, relationship=None)
        return changes
    if action == "unmappable":
        changes.update(target_code=None, target_display=None, relationship=decision.relationship or "not-related-to")
        return _final(project, changes, Status.unmappable)
    concept = _target(session, project, item, decision, lookup)
    changes.update(
        target_code=concept.code, target_display=concept.display, relationship=decision.relationship or "equivalent"
    )
    return _final(project, changes, Status.approved)


def _final(project: Project, changes: dict[str, Any], status: Status) -> dict[str, Any]:
    if project.four_eyes:
        changes.update(status=Status.pending, proposed_status=status)
    else:
        changes["status"] = status
    return changes


def _target(session: Session, project: Project, item: SourceItem, decision: DecisionCreate, lookup: ConceptLookup) -> Concept:
    code = decision.target_code
    if code is None and decision.action == "approve":
        top = current_suggestions(session, item)
        code = top[0].code if top else None
    if code is None:
        what = "remap needs target_code" if decision.action == "remap" else "nothing to approve: no suggestions yet"
        raise Invalid(f"{item.code!r}: {what}; search the target terminology and remap to a concept code")
    concept = lookup(code)
    if concept is None:
        raise Invalid(f"{code!r} is not a code of {project.target_terminology}; search for the concept and use its code")
    return concept


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
