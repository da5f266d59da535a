"""Releases: create one, see its diff against the previous one, download each export."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models.catalog import Catalog
from service import crud, crud_releases
from service.exports import export
from service.exports.formats import FORMATS
from service.exports.targets import refusal
from service.store.errors import Invalid, StoreError
from service.store.tables import Project, ReleaseDiff
from service.ui.render import render
from service.ui.session import Browser, BrowserDep, FormDep
from service.web.deps import CatalogDep, SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/ui/projects/{project_id}/releases", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def releases_page(
    request: Request, browser: BrowserDep, session: SessionDep, catalog: CatalogDep, project_id: int
) -> HTMLResponse:
    return _releases(request, browser, session, catalog, project_id)


def _releases(
    request: Request,
    browser: Browser,
    session,
    catalog: Catalog,
    project_id: int,
    error: str | None = None,
    status_code: int = 200,
    note: str = "",
):
    project = crud.get_project(session, project_id)
    releases = crud_releases.list_releases(session, project)[::-1]  # newest first
    counts = crud.project_public(session, project).counts
    return render(
        request,
        "releases.html",
        status_code,
        browser=browser,
        project=project,
        releases=releases,
        releasable=counts.get("approved", 0) + counts.get("unmappable", 0),
        error=error,
        note=note,
        unavailable=unavailable_formats(catalog, project),
    )


def unavailable_formats(catalog: Catalog, project: Project) -> dict[str, str]:
    """Export formats this project cannot be written in (e.g. OMOP without a loaded OMOP vocabulary) and why."""
    return {name: why for name, fmt in FORMATS.items() if (why := refusal(fmt, catalog, project.target_terminology))}


@router.post("", response_class=HTMLResponse)
def create_release(
    request: Request, browser: BrowserDep, session: SessionDep, catalog: CatalogDep, form: FormDep, project_id: int
):
    note = (form.get("note") or "").strip()
    try:
        browser.require(Permission.release)
        if len(note) > 4000:
            raise Invalid("the note is over 4,000 characters; shorten it")
        project = crud.get_project(session, project_id)
        release = crud_releases.create_release(session, project, browser.principal.name, note or None)
    except StoreError as error:
        session.rollback()
        return _releases(request, browser, session, catalog, project_id, error.detail, error.status, note)
    return RedirectResponse(f"/ui/projects/{project_id}/releases/{release.number}", status_code=303)


@router.get("/{number}", response_class=HTMLResponse)
def release_page(
    request: Request, browser: BrowserDep, session: SessionDep, catalog: CatalogDep, project_id: int, number: int
) -> HTMLResponse:
    project = crud.get_project(session, project_id)
    release = crud_releases.get_release(session, project, number)
    earlier = [r.number for r in crud_releases.list_releases(session, project) if r.number < number]
    diff = crud_releases.diff(session, project, earlier[-1], number) if earlier else _first_diff(session, release)
    return render(
        request, "release.html", browser=browser, project=project, release=release, diff=diff,
        base=earlier[-1] if earlier else None, unavailable=unavailable_formats(catalog, project),
    )  # fmt: skip


def _first_diff(session, release) -> ReleaseDiff:
    """Release 1 against nothing: every entry is new."""
    entries = crud_releases.release_detail(session, release).entries
    return ReleaseDiff(from_number=0, to_number=release.number, added=entries, removed=[], changed=[])


@router.get("/{number}/export/{fmt}")
def download(
    browser: BrowserDep, session: SessionDep, catalog: CatalogDep, project_id: int, number: int, fmt: str
) -> Response:
    """The file, or an error page that says why (an unknown format, OMOP concept ids the catalog lacks)."""
    exported = export(crud_releases.bundle(session, crud.get_project(session, project_id), number), fmt, catalog)
    disposition = {"Content-Disposition": f'attachment; filename="{exported.filename}"', "Cache-Control": "no-store"}
    return Response(exported.content, media_type=exported.media_type, headers=disposition)
