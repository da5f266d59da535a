"""`create_app`: the review service (the HTTP API and the review UI) on the store that the settings name
(migrated by `crosswalk serve` at start)."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute

from service import engine as serving
from service import ui
from service.api import problems
from service.api.routes import audit, feeds, fhir, health, items, living, messages, models, projects, releases, tokens
from service.settings import Settings, get_settings
from service.store.db import engine_for
from service.web.deps import SuggesterFactory
from service.web.roles import __doc__ as ROLE_TABLE

log = logging.getLogger("crosswalk.api")
DESCRIPTION = """Review machine-suggested terminology mappings, keep a tamper-evident audit log, publish
numbered releases and export them (FHIR ConceptMap R4/R5, SSSOM, OMOP, Usagi).

Authenticate with `Authorization: Bearer <token>`. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(settings: Settings | None = None, suggester_factory: SuggesterFactory | None = None) -> FastAPI:
    """The service on `settings`' store. A `suggester_factory` (tests, benchmarks) replaces the serving
    models, and its suggesters' terminologies then stand in for the catalog's."""
    settings = settings or get_settings()
    engine = engine_for(settings.database_url)  # its schema is at head: `serve` and `crosswalk db upgrade` migrate
    app = FastAPI(title="crosswalk review service", version="1", description=DESCRIPTION + "\n" + (ROLE_TABLE or ""))
    app.state.settings, app.state.engine = settings, engine
    if suggester_factory is None:
        served = serving.served_suggesters(settings)
        app.state.suggester_factory = _known(served)
        app.state.terminologies = serving.terminologies(settings)
    else:
        app.state.suggester_factory = suggester_factory
        app.state.terminologies = serving.Terminologies(lambda name: suggester_factory(name).terminology)
    problems.install(app)
    app.middleware("http")(_log_requests)
    for module in (health, projects, items, releases, audit, tokens, fhir, feeds, messages, models, living):
        _summaries_from_docstrings(module.router)
        app.include_router(module.router)
    ui.install(app)  # the browser pages under /ui, and / -> /ui/ (left out of the OpenAPI document)
    return app


def load_serving_models(app: FastAPI) -> dict[str, str]:
    """Build the serving model (the registry's champion, else the bundled one) of every terminology
    a project maps to, so the first requests after a start do not wait for it; name -> model version.

    A terminology that cannot be served (e.g. no longer loaded) is logged and left to fail per request.
    """
    from service import crud
    from service.store.db import session_scope
    from service.store.errors import StoreError

    with session_scope(app.state.engine) as session:
        names = sorted({project.target_terminology for project in crud.list_projects(session)})
    loaded: dict[str, str] = {}
    for name in names:
        try:
            loaded[name] = app.state.suggester_factory(name).model_version
        except StoreError as error:
            log.warning("not serving %s: %s", name, error.detail)
    return loaded


def _summaries_from_docstrings(router: APIRouter) -> None:
    """The OpenAPI summary of each route is the first line of its docstring."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.description:
            route.summary = route.description.strip().splitlines()[0]


def _known(served: serving.ServedSuggesters) -> SuggesterFactory:
    """The serving suggesters, with an unknown terminology answered as the request's error; the cache's
    `reload` (POST /models/reload) stays reachable."""

    def suggester(terminology: str):
        return serving.known(lambda: served(terminology))

    suggester.reload = served.reload  # type: ignore[attr-defined]
    return suggester


async def _log_requests(request: Request, call_next):
    """Method, route template, status and time: never query strings, bodies or headers (PHI, tokens).

    An unexpected error becomes a 500 problem here: past this point Starlette would hand it to the
    server, which logs the traceback and the message, and either may quote a source text.
    """
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception as error:  # noqa: BLE001
        response = problems.unexpected(request, error)
    route = getattr(request.scope.get("route"), "path", "-")
    log.info("%s %s %d %.1f ms", request.method, route, response.status_code, (time.perf_counter() - started) * 1000)
    return response
