"""Releases: immutable numbered snapshots of approved mappings, their diffs and standard exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service import crud_releases
from service.api.deps import allow
from service.exports import export
from service.exports.formats import FORMATS, MEDIA_TYPES, FormatName
from service.store.tables import ReleaseCreate, ReleaseDetail, ReleaseDiff, ReleasePublic
from service.web.deps import CatalogDep, CurrentPrincipal, ProjectDep, SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/projects/{project_id}/releases", tags=["releases"])
EXPORT_TYPES = {media_type: {} for media_type in MEDIA_TYPES}
FORMAT_HELP = "; ".join(f"{f.name}: {f.label}" for f in FORMATS.values())


@router.post("", status_code=201, response_model=ReleasePublic, **allow(Permission.release, 404, 422))
def create_release(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, data: ReleaseCreate
) -> ReleasePublic:
    """Snapshot the approved (and unmappable) decisions as the next numbered release."""
    return ReleasePublic.model_validate(crud_releases.create_release(session, project, principal.name, data.note))


@router.get("", response_model=list[ReleasePublic], **allow(Permission.read, 404, 422))
def list_releases(project: ProjectDep, session: SessionDep) -> list[ReleasePublic]:
    """The project's releases, oldest first."""
    return [ReleasePublic.model_validate(r) for r in crud_releases.list_releases(session, project)]


@router.get("/{number}", response_model=ReleaseDetail, **allow(Permission.read, 404, 422))
def get_release(project: ProjectDep, session: SessionDep, number: int) -> ReleaseDetail:
    """One release with all its entries."""
    return crud_releases.release_detail(session, crud_releases.get_release(session, project, number))


@router.get("/{number}/diff", response_model=ReleaseDiff, **allow(Permission.read, 404, 422))
def diff_releases(
    project: ProjectDep,
    session: SessionDep,
    number: int,
    base: Annotated[int, Query(description="The earlier release to compare with.")],
) -> ReleaseDiff:
    """Entries added, removed and changed from release `base` to this one."""
    return crud_releases.diff(session, project, base, number)


@router.get(
    "/{number}/export",
    response_class=Response,
    **allow(Permission.read, 404, 409, 422, ok={"description": "The export file.", "content": EXPORT_TYPES}),
)
def export_release(
    project: ProjectDep,
    session: SessionDep,
    catalog: CatalogDep,
    number: int,
    format: Annotated[FormatName, Query(description=FORMAT_HELP)],
) -> Response:
    """Download a release as FHIR ConceptMap R4/R5 JSON, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP or Usagi CSV.

    OMOP and Usagi files carry OMOP concept ids: a target that is not an OMOP vocabulary is looked up in a
    loaded one; without it the answer is a 409 saying what to load (never a file of zeros)."""
    exported = export(crud_releases.bundle(session, project, number), format, catalog)
    disposition = {"Content-Disposition": f'attachment; filename="{exported.filename}"'}
    return Response(exported.content, media_type=exported.media_type, headers=disposition)
