"""Living mappings: terminology releases and re-opened mappings, source-list updates, reuse of
approvals across projects, dual independent mapping, and bulk actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile

from service import crud
from service.api.deps import allow
from service.api.problems import MAX_BODY_BYTES
from service.crud_imports import ImportFormat, parse_source_file
from service.living import bulk, dual, reuse, sources, terminology
from service.store.errors import Invalid, TooLarge
from service.store.living import (
    AgreementReport,
    BlindChoiceCreate,
    BulkApprove,
    BulkReassign,
    BulkResuggest,
    BulkResult,
    BulkReuse,
    DualCreate,
    DualPublic,
    DualStatus,
    ItemOffers,
    ReopeningPublic,
    ReuseOffer,
    ReuseTake,
    SourceUpdatePublic,
    TerminologyReleaseDetail,
    TerminologyReleasePublic,
)
from service.store.tables import ItemPublic, SourceItem
from service.web.deps import (
    CurrentPrincipal,
    IfMatch,
    ProjectDep,
    SessionDep,
    SuggesterDep,
    SuggesterFactoryDep,
    TargetDep,
)
from service.web.roles import Permission

router = APIRouter(tags=["living mappings"])
P = "/projects/{project_id}"


# -- terminology releases ---------------------------------------------------------------------------
@router.get("/terminology-releases", response_model=list[TerminologyReleasePublic], **allow(Permission.read, 422))
def list_terminology_releases(session: SessionDep, name: str | None = None) -> list[TerminologyReleasePublic]:
    """Terminology releases the store has seen loaded, with change counts (`crosswalk terminology update`)."""
    return terminology.list_releases(session, name)


@router.get(
    "/terminology-releases/{number}", response_model=TerminologyReleaseDetail, **allow(Permission.read, 404, 422)
)
def get_terminology_release(
    session: SessionDep,
    number: int,
    kind: Annotated[
        list[str] | None, Query(description="Only these change kinds: added, retired, replaced, renamed.")
    ] = None,
) -> TerminologyReleaseDetail:
    """One terminology release: its changes and the mappings it re-opened, with reasons."""
    return terminology.release_detail(session, number, kind)


@router.get(P + "/reopenings", response_model=list[ReopeningPublic], **allow(Permission.read, 404, 422))
def list_reopenings(project: ProjectDep, session: SessionDep) -> list[ReopeningPublic]:
    """Mappings sent back to review by a terminology release or a changed source text, and why."""
    return terminology.reopenings_of(session, project=project)


# -- source updates ---------------------------------------------------------------------------------
@router.post(P + "/source-updates", response_model=SourceUpdatePublic, **allow(Permission.edit, 404, 413, 422))
def update_source(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    factory: SuggesterFactoryDep,
    file: Annotated[UploadFile, File(description="The whole current source list: CSV or Usagi CSV.")],
    format: Annotated[ImportFormat, Query(description="csv (crosswalk columns) or usagi.")] = "csv",
    encoding: Annotated[
        str | None, Query(max_length=40, description="Text encoding (default UTF-8; a byte-order mark decides).")
    ] = None,
    resuggest: Annotated[bool, Query(description="Re-suggest new and changed texts with the current model.")] = True,
) -> SourceUpdatePublic:
    """Re-import the source list: new, removed and changed codes; unchanged decisions carry forward."""
    data = file.file.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"{file.filename}: over the {MAX_BODY_BYTES // 2**20} MB limit; split the file")
    rows = parse_source_file(data, format, file.filename or "upload", encoding)
    suggester = factory(project.target_terminology) if resuggest else None
    return sources.update_source(session, project, rows, principal.name, suggester)


# -- reuse ------------------------------------------------------------------------------------------
@router.get(P + "/items/{code:path}/reuse", response_model=list[ReuseOffer], **allow(Permission.read, 404, 422))
def reuse_offers(project: ProjectDep, session: SessionDep, code: str) -> list[ReuseOffer]:
    """Approvals of the same code or near-identical text in other projects, with provenance."""
    return reuse.offers(session, project, crud.get_item(session, project, code))


@router.post(P + "/items/{code:path}/reuse", response_model=ItemPublic, **allow(Permission.decide, 404, 409, 422, 428))
def take_reuse(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    code: str,
    choice: ReuseTake,
    if_match: IfMatch,
    response: Response,
) -> ItemPublic:
    """Take an offered approval from another project as this item's decision (audited as decision.reuse)."""
    item = reuse.take(session, project, code, choice, principal.name, _version(if_match, choice.version))
    response.headers["ETag"] = f'"{item.version}"'
    return crud.item_public(session, item)


@router.get(P + "/reuse", response_model=list[ItemOffers], **allow(Permission.read, 404, 422))
def project_reuse_offers(project: ProjectDep, session: SessionDep) -> list[ItemOffers]:
    """Every undecided item that an approval in another project fits, with the offers and their provenance."""
    return reuse.project_offers(session, project)


@router.post(P + "/bulk/reuse", response_model=BulkResult, **allow(Permission.confirm, 404, 422))
def bulk_reuse(project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, request: BulkReuse) -> BulkResult:
    """Take the best offer of every filtered undecided item whose offers agree (each a decision.reuse)."""
    return reuse.take_all(session, project, request, principal.name)


# -- dual independent mapping -----------------------------------------------------------------------
@router.post(P + "/dual", response_model=list[DualPublic], **allow(Permission.confirm, 404, 422))
def assign_dual(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, data: DualCreate
) -> list[DualPublic]:
    """Put undecided items (filtered, e.g. by frequency or context domain) under dual independent mapping."""
    created = dual.assign(session, project, data, principal.name)
    return [dual.dual_public(session, d, session.get(SourceItem, d.item_id), principal.name) for d in created]


@router.get(P + "/dual", response_model=list[DualPublic], **allow(Permission.read, 404, 422))
def list_dual(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, status: DualStatus | None = None
) -> list[DualPublic]:
    """Dual-mapped items; choices are shown to their own mapper only, until both have chosen."""
    return dual.list_duals(session, project, principal.name, status)


@router.get(P + "/dual/agreement", response_model=AgreementReport, **allow(Permission.read, 404, 422))
def dual_agreement(project: ProjectDep, session: SessionDep) -> AgreementReport:
    """Percent agreement and Cohen's kappa per mapper pair and per domain."""
    return dual.agreement(session, project)


@router.get(P + "/dual/{code:path}", response_model=DualPublic, **allow(Permission.read, 404, 422))
def get_dual(project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, code: str) -> DualPublic:
    """One dual-mapped item; the other mapper's choice stays hidden while the pair is open."""
    assignment, item = dual.dual_of(session, project, code)
    return dual.dual_public(session, assignment, item, principal.name)


@router.post(P + "/dual/{code:path}/choices", response_model=DualPublic, **allow(Permission.decide, 404, 409, 422))
def choose(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target: TargetDep,
    code: str,
    choice: BlindChoiceCreate,
) -> DualPublic:
    """A mapper's blind choice; once both chose, agreement decides the item, a difference waits for reconciliation."""
    assignment = dual.choose(session, project, code, choice, principal.name, target)
    return dual.dual_public(session, assignment, crud.get_item(session, project, code), principal.name)


@router.post(
    P + "/dual/{code:path}/reconciliation", response_model=DualPublic, **allow(Permission.confirm, 404, 409, 422)
)
def reconcile(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target: TargetDep,
    code: str,
    choice: BlindChoiceCreate,
) -> DualPublic:
    """Decide a disagreement, both choices side by side (GET .../dual/{code}); not by either mapper."""
    assignment = dual.reconcile(session, project, code, choice, principal.name, target)
    return dual.dual_public(session, assignment, crud.get_item(session, project, code), principal.name)


# -- bulk actions -----------------------------------------------------------------------------------
@router.post(P + "/bulk/approve", response_model=BulkResult, **allow(Permission.confirm, 404, 422))
def bulk_approve(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target: TargetDep,
    request: BulkApprove,
) -> BulkResult:
    """Approve the top suggestion of every filtered item whose calibrated score reaches min_score."""
    return bulk.approve(session, project, request, principal.name, target)


@router.post(P + "/bulk/reassign", response_model=BulkResult, **allow(Permission.confirm, 404, 422))
def bulk_reassign(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, request: BulkReassign
) -> BulkResult:
    """Assign the filtered items to one mapper."""
    return bulk.reassign(session, project, request, principal.name)


@router.post(P + "/bulk/resuggest", response_model=BulkResult, **allow(Permission.edit, 404, 422))
def bulk_resuggest(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    suggester: SuggesterDep,
    request: BulkResuggest,
) -> BulkResult:
    """Re-suggest the filtered items with the current model version."""
    return bulk.resuggest(session, project, request, suggester, principal.name)


def _version(header: int | None, body: int | None) -> int | None:
    if header is not None and body is not None and header != body:
        raise Invalid(f"If-Match says version {header} but the body says {body}; send one version")
    return header if header is not None else body
