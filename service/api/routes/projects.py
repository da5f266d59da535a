"""Mapping projects: one source system to one target terminology; imports, suggestions, concept search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from service import crud
from service.api.deps import allow
from service.api.problems import MAX_BODY_BYTES
from service.crud_imports import ImportFormat, generate_suggestions, import_items, parse_source_file, search
from service.monitoring.feeds import Upload
from service.monitoring.messages import MESSAGE_FORMATS, MessageFormat, import_messages
from service.source_schemas import import_schema, read_database_source, read_uploads, require_field_project
from service.store.errors import TooLarge
from service.store.messages import MessageImportResult
from service.store.tables import (
    ConceptPublic,
    DatabaseSource,
    ImportResult,
    ProjectCreate,
    ProjectDeleted,
    ProjectPublic,
    ProjectUpdate,
    SchemaImportResult,
    SuggestRequest,
    SuggestResult,
)
from service.web.deps import (
    CurrentPrincipal,
    ProjectDep,
    SessionDep,
    SuggesterDep,
    TargetModelsDep,
    TerminologiesDep,
)
from service.web.roles import Permission

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectPublic, **allow(Permission.edit, 409, 422))
def create_project(
    data: ProjectCreate, session: SessionDep, principal: CurrentPrincipal, terminologies: TerminologiesDep
) -> ProjectPublic:
    """Create a mapping project (source system -> a loaded target terminology)."""
    project = crud.create_project(session, data, principal.name, terminologies.require)
    return crud.project_public(session, project)


@router.patch("/{project_id}", response_model=ProjectPublic, **allow(Permission.edit, 404, 409, 422))
def update_project(
    project: ProjectDep,
    data: ProjectUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
    terminologies: TerminologiesDep,
) -> ProjectPublic:
    """Rename a project, or point it at another terminology while nothing has been decided."""
    if data.name is not None:
        crud.rename_project(session, project, data.name, principal.name)
    if data.target_terminology is not None:
        crud.set_target(session, project, data.target_terminology, principal.name, terminologies.require)
    return crud.project_public(session, project)


@router.get("", response_model=list[ProjectPublic], **allow(Permission.read, 422))
def list_projects(
    session: SessionDep,
    archived: Annotated[bool, Query(description="Also list archived projects.")] = False,
) -> list[ProjectPublic]:
    """List projects with their items per status (archived ones only when asked for)."""
    return [crud.project_public(session, p) for p in crud.list_projects(session, archived)]


@router.get("/{project_id}", response_model=ProjectPublic, **allow(Permission.read, 404, 422))
def get_project(project: ProjectDep, session: SessionDep) -> ProjectPublic:
    """One project with its items per status."""
    return crud.project_public(session, project)


@router.delete("/{project_id}", response_model=ProjectDeleted, **allow(Permission.admin, 404, 409, 422))
def delete_project(project: ProjectDep, session: SessionDep, principal: CurrentPrincipal) -> ProjectDeleted:
    """Delete a project that has no release, with its items, decisions, suggestions and comments, in one
    audited transaction; a released project is refused (409): archive it instead."""
    return crud.delete_project(session, project, principal.name)


@router.post("/{project_id}/archive", response_model=ProjectPublic, **allow(Permission.admin, 404, 409, 422))
def archive_project(project: ProjectDep, session: SessionDep, principal: CurrentPrincipal) -> ProjectPublic:
    """Archive a project: read-only (decisions and imports are refused), hidden from lists; its releases
    and exports stay readable."""
    return crud.project_public(session, crud.archive_project(session, project, principal.name))


@router.post("/{project_id}/unarchive", response_model=ProjectPublic, **allow(Permission.admin, 404, 409, 422))
def unarchive_project(project: ProjectDep, session: SessionDep, principal: CurrentPrincipal) -> ProjectPublic:
    """Make an archived project writable and listed again."""
    return crud.project_public(session, crud.unarchive_project(session, project, principal.name))


@router.post(
    "/{project_id}/imports",
    response_model=MessageImportResult,
    response_model_exclude_none=True,  # a CSV import answers as it always has
    **allow(Permission.edit, 404, 409, 413, 422),
)
def import_source_codes(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target_models: TargetModelsDep,
    file: Annotated[
        UploadFile, File(description="CSV (source_code,source_text[,frequency,...]), Usagi CSV, HL7 v2 or FHIR.")
    ],
    format: Annotated[
        ImportFormat | MessageFormat, Query(description="csv (crosswalk columns), usagi, hl7v2 or fhir.")
    ] = "csv",
    field: Annotated[
        str | None, Query(max_length=40, description="hl7v2/fhir: the coded field, e.g. OBX-3, OBR-4, DG1-3.")
    ] = None,
    encoding: Annotated[
        str | None, Query(max_length=40, description="Text encoding (default UTF-8; a byte-order mark decides).")
    ] = None,
) -> ImportResult:
    """Import or re-import source codes; re-imports update texts and frequencies, never decisions. From
    messages: the local codes of a field with frequency and context, each linked to its messages."""
    if format == "schema":
        require_field_project(project, target_models)
    data = _read(file)
    if format in MESSAGE_FORMATS:
        upload = Upload(file.filename or "upload", data)
        return import_messages(session, project, [upload], format, field, principal.name).public()
    rows = parse_source_file(data, format, file.filename or "upload", encoding)
    return import_items(session, project, rows, principal.name)


@router.post(
    "/{project_id}/source-schema", response_model=SchemaImportResult, **allow(Permission.edit, 404, 409, 413, 415, 422)
)
def import_source_files(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target_models: TargetModelsDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="A field project's source: one CSV or Parquet file per table (named after the file, with "
            "value profiles), a schema CSV (table,column[,description,type,table_description]), or HL7 v2 "
            "messages (x-application/hl7-v2+er7: one item per segment field present)."
        ),
    ],
) -> SchemaImportResult:
    """Import a field project's source columns from files, one item per column (code `table.column`);
    re-imports update descriptions and profiles, never decisions. All or nothing."""
    require_field_project(project, target_models)
    uploads = [Upload(f.filename or "upload", _read(f), f.content_type or "") for f in files]
    return import_schema(session, project, read_uploads(uploads), principal.name, target_models)


@router.post(
    "/{project_id}/source-schema/database",
    response_model=SchemaImportResult,
    **allow(Permission.edit, 404, 409, 422),
)
def import_source_database(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    target_models: TargetModelsDep,
    request: Request,
    source: DatabaseSource,
) -> SchemaImportResult:
    """Import a field project's source columns from a live database: tables, columns, types, comments,
    keys and value profiles of a bounded sample. An unreachable server is a 422 within seconds."""
    require_field_project(project, target_models)
    store = request.app.state.settings.database_url
    schema = read_database_source(source.url, source.db_schema, store)
    return import_schema(session, project, schema, principal.name, target_models)


def _read(file: UploadFile) -> bytes:
    data = file.file.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"{file.filename}: over the {MAX_BODY_BYTES // 2**20} MB limit; split the file")
    return data


@router.post("/{project_id}/suggestions", response_model=SuggestResult, **allow(Permission.edit, 404, 422))
def suggest(
    project: ProjectDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    suggester: SuggesterDep,
    request: SuggestRequest,
) -> SuggestResult:
    """Rank target concepts for the project's source codes and store them with the model version."""
    return generate_suggestions(session, project, suggester, request, principal.name)


@router.get("/{project_id}/search", response_model=list[ConceptPublic], **allow(Permission.read, 404, 422))
def search_concepts(
    project: ProjectDep,
    suggester: SuggesterDep,
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Free text or a concept code.")],
    top_k: Annotated[int, Query(ge=1, le=50, description="At most this many text matches, and this many ranked.")] = 10,
    concept_class: Annotated[str | None, Query(alias="class", max_length=200, description="LOINC CLASS: CHEM")] = None,
    system: Annotated[str | None, Query(max_length=200, description="LOINC SYSTEM, e.g. Ser/Plas.")] = None,
    scale: Annotated[str | None, Query(max_length=200, description="LOINC SCALE_TYP, e.g. Qn.")] = None,
    status: Annotated[str | None, Query(max_length=200, description="LOINC STATUS, e.g. ACTIVE or DEPRECATED.")] = None,
    include_inactive: Annotated[bool, Query(description="Also list inactive, discouraged, deprecated ones.")] = False,
) -> list[ConceptPublic]:
    """Search the target terminology for a concept to remap to: the exact code (`match` "code"), then
    concepts whose display or synonyms hold every word of `q` (whole or as a prefix, `match` "text"),
    then the model's ranking of `q` (`match` "ranked", with its `score`). Inactive and deprecated text
    matches are left out unless asked for; the header `X-Hidden-Inactive` says how many were."""
    filters = {"class": concept_class, "system": system, "scale": scale, "status": status}
    found = search(suggester, project, q, top_k, filters, include_inactive)
    response.headers["X-Hidden-Inactive"] = str(found.hidden_inactive)
    return found.concepts
