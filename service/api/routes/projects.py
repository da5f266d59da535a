"""Mapping projects: one source system to one target terminology; imports, suggestions, concept search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from service import crud
from service.api.deps import allow
from service.api.problems import MAX_BODY_BYTES
from service.crud_imports import ImportFormat, generate_suggestions, import_items, parse_source_file, search
from service.monitoring.feeds import Upload
from service.monitoring.messages import MESSAGE_FORMATS, MessageFormat, import_messages
from service.store.errors import TooLarge
from service.store.messages import MessageImportResult
from service.store.tables import (
    ConceptPublic,
    ImportResult,
    ProjectCreate,
    ProjectPublic,
    SuggestRequest,
    SuggestResult,
)
from service.web.deps import CurrentPrincipal, ProjectDep, SessionDep, SuggesterDep
from service.web.roles import Permission

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectPublic, **allow(Permission.edit, 409, 422))
def create_project(data: ProjectCreate, session: SessionDep, principal: CurrentPrincipal) -> ProjectPublic:
    """Create a mapping project (source system -> target terminology)."""
    project = crud.create_project(session, data, principal.name)
    return crud.project_public(session, project)


@router.get("", response_model=list[ProjectPublic], **allow(Permission.read))
def list_projects(session: SessionDep) -> list[ProjectPublic]:
    """List projects with their items per status."""
    return [crud.project_public(session, p) for p in crud.list_projects(session)]


@router.get("/{project_id}", response_model=ProjectPublic, **allow(Permission.read, 404, 422))
def get_project(project: ProjectDep, session: SessionDep) -> ProjectPublic:
    """One project with its items per status."""
    return crud.project_public(session, project)


@router.post(
    "/{project_id}/imports",
    response_model=MessageImportResult,
    response_model_exclude_none=True,  # a CSV import answers as it always has
    **allow(Permission.edit, 404, 413, 422),
)
def import_source_codes(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    file: Annotated[
        UploadFile, File(description="CSV (source_code,source_text[,frequency,...]), Usagi CSV, HL7 v2 or FHIR.")
    ],
    format: Annotated[
        ImportFormat | MessageFormat, Query(description="csv (crosswalk columns), usagi, hl7v2 or fhir.")
    ] = "csv",
    field: Annotated[
        str | None, Query(max_length=40, description="hl7v2/fhir: the coded field, e.g. OBX-3, OBR-4, DG1-3.")
    ] = None,
) -> ImportResult:
    """Import or re-import source codes; re-imports update texts and frequencies, never decisions. From
    messages: the local codes of a field with frequency and context, each linked to its messages."""
    data = file.file.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"{file.filename}: over the {MAX_BODY_BYTES // 2**20} MB limit; split the file")
    if format in MESSAGE_FORMATS:
        upload = Upload(file.filename or "upload", data)
        return import_messages(session, project, [upload], format, field, principal.name).public()
    rows = parse_source_file(data, format, file.filename or "upload")
    return import_items(session, project, rows, principal.name)


@router.post("/{project_id}/suggestions", response_model=SuggestResult, **allow(Permission.edit, 404, 422))
def suggest(
    project: ProjectDep, session: SessionDep, principal: CurrentPrincipal, suggester: SuggesterDep, request: SuggestRequest
) -> SuggestResult:
    """Rank target concepts for the project's source codes and store them with the model version."""
    return generate_suggestions(session, project, suggester, request, principal.name)


@router.get("/{project_id}/search", response_model=list[ConceptPublic], **allow(Permission.read, 404, 422))
def search_concepts(
    project: ProjectDep,
    suggester: SuggesterDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Free text or a concept code.")],
    top_k: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[ConceptPublic]:
    """Search the target terminology for a concept to remap to (an exact code comes first)."""
    return search(suggester, project, q, top_k)
