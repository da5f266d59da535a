"""Source items: their suggestions, reviewers' decisions (versioned), four-eyes confirmation, history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlmodel import Field, SQLModel

from service import audit, crud, decisions
from service.api.deps import allow
from service.store.errors import Invalid
from service.store.tables import (
    AuditEventPublic,
    CommentCreate,
    ConfirmationCreate,
    DecisionCreate,
    ItemPage,
    ItemPublic,
    Status,
)
from service.web.deps import CurrentPrincipal, IfMatch, ProjectDep, SessionDep, TargetDep
from service.web.roles import Permission

router = APIRouter(prefix="/projects/{project_id}/items", tags=["items"])
# A code may hold "/" (e.g. "NA/K"): `{code:path}` takes it whole. GET /{code} takes any path, so
# the GET routes with a suffix (here /history, in `living` /reuse) are matched before it.


@router.get("", response_model=ItemPage, **allow(Permission.read, 404, 422))
def list_items(
    project: ProjectDep,
    session: SessionDep,
    status: Status | None = None,
    confidence: Annotated[
        Literal["weak", "confident"] | None,
        Query(description="weak: only items with no confident match (reviewers start there)."),
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ItemPage:
    """A page of source items, most frequent first, optionally of one status or match confidence."""
    total, items = crud.list_items(session, project, status, offset, limit, confidence)
    return ItemPage(total=total, items=[crud.item_public(session, i) for i in items])


@router.get("/{code:path}/history", response_model=list[AuditEventPublic], **allow(Permission.read, 404, 422))
def item_history(project: ProjectDep, session: SessionDep, code: str) -> list[AuditEventPublic]:
    """Every audited change of one item: imports, suggestions, decisions, oldest first."""
    item = crud.get_item(session, project, code)
    return audit.history(session, entity=audit.entity_of(item))


@router.get("/{code:path}", response_model=ItemPublic, **allow(Permission.read, 404, 422))
def get_item(project: ProjectDep, session: SessionDep, code: str, response: Response) -> ItemPublic:
    """One source item with its current suggestions and comment thread; the ETag is its version."""
    item = crud.item_public(session, crud.get_item(session, project, code), thread=True)
    response.headers["ETag"] = f'"{item.version}"'
    return item


@router.post("/{code:path}/decisions", response_model=ItemPublic, **allow(Permission.decide, 404, 409, 422, 428))
def decide(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target: TargetDep,
    code: str,
    decision: DecisionCreate,
    if_match: IfMatch,
    response: Response,
) -> ItemPublic:
    """Approve, reject, flag, remap or mark unmappable, against the item version in If-Match (or body).

    A comment joins the item's thread. Replacing another reviewer's approval or unmappable is an override
    (409 unless `override` is true); on a four-eyes project a second reviewer's different proposal is a
    counter-proposal that a third reviewer confirms."""
    version = _version(if_match, decision.version)
    item = decisions.decide(session, project, code, decision, principal.name, version, target)
    response.headers["ETag"] = f'"{item.version}"'
    return crud.item_public(session, item, thread=True)


@router.post("/{code:path}/confirmations", response_model=ItemPublic, **allow(Permission.confirm, 404, 409, 422, 428))
def confirm(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    code: str,
    confirmation: ConfirmationCreate,
    if_match: IfMatch,
    response: Response,
) -> ItemPublic:
    """Four-eyes: confirm another person's pending decision, which then becomes final."""
    version = _version(if_match, confirmation.version)
    item = decisions.confirm(session, project, code, principal.name, version, confirmation.comment)
    response.headers["ETag"] = f'"{item.version}"'
    return crud.item_public(session, item)


class RevertCreate(SQLModel):
    comment: str | None = Field(default=None, max_length=4000)
    version: int | None = Field(default=None, description="Item version the undo was made against (or If-Match).")


@router.post("/{code:path}/reverts", response_model=ItemPublic, **allow(Permission.decide, 404, 409, 422, 428))
def revert(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    code: str,
    body: RevertCreate,
    if_match: IfMatch,
    response: Response,
) -> ItemPublic:
    """Undo the item's latest decision with a new audited decision restoring the state before it."""
    item = decisions.revert(session, project, code, principal.name, _version(if_match, body.version), body.comment)
    response.headers["ETag"] = f'"{item.version}"'
    return crud.item_public(session, item)


@router.post("/{code:path}/comments", response_model=ItemPublic, **allow(Permission.decide, 404, 422))
def add_comment(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, code: str, comment: CommentCreate
) -> ItemPublic:
    """Add a comment to the item's thread without deciding (the thread only grows)."""
    if not comment.text.strip():
        raise Invalid("the comment is empty; write what the next reviewer should know")
    audit.lock_chain(session)
    item = crud.get_item(session, project, code)
    decisions.add_comment(session, item, principal.name, comment.text)
    return crud.item_public(session, item, thread=True)


def _version(header: int | None, body: int | None) -> int | None:
    if header is not None and body is not None and header != body:
        raise Invalid(f"If-Match says version {header} but the body says {body}; send one version")
    return header if header is not None else body
