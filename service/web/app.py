"""`create_app`: the review service (the HTTP API and the review UI) on the store that the settings name
(migrated by `crosswalk serve` at start)."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute

from service import engine as serving
from service import ui
from service.api import problems
from service.api.routes import audit, feeds, fhir, health, items, living, messages, models, projects, releases, tokens
from service.settings import Settings, get_settings
from service.store.db import concurrent_sessions, engine_for
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
    # its schema is at head: `serve` and `crosswalk db upgrade` migrate
    engine = engine_for(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
    description = DESCRIPTION + "\n" + (ROLE_TABLE or "")
    app = FastAPI(title="crosswalk review service", version="1", description=description, lifespan=_enough_threads)
    app.state.settings, app.state.engine = settings, engine
    app.state.store_slot_count = concurrent_sessions(engine, settings.db_pool_size)  # see web.deps.get_session
    app.state.store_slots = weakref.WeakKeyDictionary()  # event loop -> its limiter
    if suggester_factory is None:
        served = serving.served_suggesters(settings)
        served.follow(partial(serving.latest_promotion, engine), serving.PROMOTION_CHECK_S)
        app.state.suggester_factory = _known(served)
        app.state.terminologies = serving.terminologies(settings)
    else:
        app.state.suggester_factory = suggester_factory
        app.state.terminologies = serving.Terminologies(lambda name: suggester_factory(name).terminology)
    problems.install(app)
    app.middleware("http")(_log_requests)
    # `living` before `items`: its GET .../items/{code}/reuse would otherwise be taken as an item's code
    for module in (health, projects, living, items, releases, audit, tokens, fhir, feeds, messages, models):
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


SPARE_THREADS = 8  # for routes and dependencies that do not touch the store


@asynccontextmanager
async def _enough_threads(app: FastAPI) -> AsyncIterator[None]:
    """Every request holding a store slot can get a worker thread, with some to spare."""
    threads = anyio.to_thread.current_default_thread_limiter()
    threads.total_tokens = max(threads.total_tokens, app.state.settings.db_pool_size + SPARE_THREADS)
    yield


def _summaries_from_docstrings(router: APIRouter) -> None:
    """The OpenAPI summary of each route is the first line of its docstring; its client errors are declared."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.description:
            route.summary = route.description.strip().splitlines()[0]
        if isinstance(route, APIRoute):
            problems.document_client_errors(route)


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
    route = problems.route_template(request)
    log.info("%s %s %d %.1f ms", request.method, route, response.status_code, (time.perf_counter() - started) * 1000)
    return response
