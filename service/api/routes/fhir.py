"""FHIR `ConceptMap/$translate`: an integration engine translates a local code with the latest release."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session

from models.catalog import Catalog
from service import crud, crud_releases
from service.api.deps import allow
from service.exports.fhir import translate_parameters
from service.exports.targets import with_identity
from service.store.errors import Invalid
from service.store.tables import Project
from service.web.deps import CatalogDep, SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/fhir", tags=["fhir"])
URL_PREFIX = "urn:crosswalk:conceptmap:"
FHIR_JSON = "application/fhir+json"
OK = {
    "description": "A FHIR Parameters resource: result, message and match (relationship, concept, originMap).",
    "content": {FHIR_JSON: {}},
}


@router.get("/ConceptMap/$translate", response_class=JSONResponse, **allow(Permission.read, 404, 422, ok=OK))
def translate(
    session: SessionDep,
    catalog: CatalogDep,
    code: Annotated[str | None, Query(description="The source code (R4 name).")] = None,
    sourceCode: Annotated[str | None, Query(description="The source code (R5 name).")] = None,  # noqa: N803
    system: Annotated[str | None, Query(description="The source code system (R4 name).")] = None,
    sourceSystem: Annotated[str | None, Query(description="The source code system (R5 name).")] = None,  # noqa: N803
    url: Annotated[
        str | None, Query(description="ConceptMap canonical, urn:crosswalk:conceptmap:<project id>.")
    ] = None,
    project: Annotated[str | None, Query(description="Project id or name, instead of url.")] = None,
) -> JSONResponse:
    """Translate a source code with a project's latest release (FHIR $translate, GET)."""
    return _translate(session, catalog, url, project, system or sourceSystem, code or sourceCode)


@router.post("/ConceptMap/$translate", response_class=JSONResponse, **allow(Permission.read, 404, 422, ok=OK))
def translate_post(
    session: SessionDep,
    catalog: CatalogDep,
    parameters: Annotated[dict[str, Any], Body(description="A FHIR Parameters resource with url, system, code.")],
) -> JSONResponse:
    """Translate a source code with a project's latest release (FHIR $translate, POST Parameters)."""
    if parameters.get("resourceType") != "Parameters" or not isinstance(parameters.get("parameter"), list):
        raise Invalid("the body must be a FHIR Parameters resource with a `parameter` list")
    values = {p.get("name"): _value(p) for p in parameters["parameter"] if isinstance(p, dict)}
    return _translate(
        session,
        catalog,
        values.get("url"),
        values.get("project"),
        values.get("system") or values.get("sourceSystem"),
        values.get("code") or values.get("sourceCode"),
    )


def _value(parameter: dict[str, Any]) -> str | None:
    for key, value in parameter.items():
        if key.startswith("value") and isinstance(value, str):
            return value
        if key == "valueCoding" and isinstance(value, dict):
            return value.get("code")
    return None


def _translate(
    session: Session, catalog: Catalog, url: str | None, ref: str | None, system: str | None, code: str | None
) -> JSONResponse:
    if not code:
        raise Invalid("give the source code to translate: code (or sourceCode)")
    project = _project(session, url, ref)
    latest = crud_releases.latest_release(session, project)
    bundle = crud_releases.bundle(session, project, latest.number) if latest else None
    if bundle is not None:  # the target's system as loaded, whatever its catalog name
        bundle = with_identity(bundle, catalog)
    system_ok = system is None or system == project.source_uri
    return JSONResponse(translate_parameters(bundle, code, system_ok), media_type=FHIR_JSON)


def _project(session: Session, url: str | None, ref: str | None) -> Project:
    if url:
        base = url.split("|", 1)[0]
        if not base.startswith(URL_PREFIX) or crud.stored_id(base.removeprefix(URL_PREFIX)) is None:
            raise Invalid(f"unknown ConceptMap url {url!r}; crosswalk's look like {URL_PREFIX}<project id>")
        return crud.get_project(session, base.removeprefix(URL_PREFIX))
    if ref:
        return crud.get_project(session, ref)
    raise Invalid("say which map: url (urn:crosswalk:conceptmap:<project id>) or project (id or name)")
