"""Dependencies of every web route, the API's and the UI's, declared once as annotated aliases so
route signatures read as typed arguments: the request's transaction, the caller, the project, its
target terminology (for decisions) and its serving suggester (for ranking)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from models.catalog import Catalog
from service import crud
from service import engine as serving
from service.crud_imports import SuggesterLike
from service.store.errors import Forbidden, Invalid, Unauthorized
from service.store.tables import Project, Role
from service.web.roles import Permission, allowed, roles_with

SuggesterFactory = Callable[[str], SuggesterLike]  # target terminology name -> suggester


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request, committed before the response is sent (rolled back on error).

    A request takes one of the app's store slots (as many as the pool's connections) before its
    session, and waits for it here, on the event loop: holding neither a connection nor a worker
    thread. Otherwise, under load, requests holding connections wait for worker threads that all
    wait for a connection, until the pool times out. Commit, rollback and close run in a worker thread.
    """
    async with _store_slots(request.app):
        session = Session(request.app.state.engine, expire_on_commit=False)
        try:
            yield session
            await anyio.to_thread.run_sync(session.commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.rollback)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)


def _store_slots(app) -> anyio.CapacityLimiter:
    """The app's store slots on the running event loop: a server runs one loop, but test clients in
    threads run one each, and a limiter must never be shared between loops (a waiter on one would
    never be woken from another)."""
    loop = asyncio.get_running_loop()
    slots = app.state.store_slots.get(loop)
    if slots is None:
        slots = app.state.store_slots[loop] = anyio.CapacityLimiter(app.state.store_slot_count)
    return slots


@asynccontextmanager
async def away_from_store(request: Request, session: Session) -> AsyncIterator[None]:
    """For long work that needs no store (a Dask cluster profiling a batch), in an async route: the
    request's transaction is ended and its store slot handed back meanwhile, so other requests never queue
    behind it; the slot is taken again (in turn) before the route goes on with the session."""
    await anyio.to_thread.run_sync(session.commit)
    slots = _store_slots(request.app)
    slots.release()  # get_session took it in this same task (an async route runs in the request's task)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):  # get_session gives the slot back at the end: it must hold one
            await slots.acquire()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
_bearer = HTTPBearer(auto_error=False, description="An API token from `crosswalk token create` or POST /tokens.")


@dataclass(frozen=True)
class Principal:
    name: str  # the actor recorded in the audit log
    role: Role


def get_principal(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("no API token; send the header Authorization: Bearer <token>")
    token = crud.token_for(session, credentials.credentials)
    if token is None:
        raise Unauthorized("unknown or revoked API token; ask an admin for a new one")
    return Principal(name=token.name, role=Role(token.role))


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def requires(permission: Permission) -> Callable[[Principal], Principal]:
    def check(principal: CurrentPrincipal) -> Principal:
        if not allowed(principal.role, permission):
            raise Forbidden(
                f"role {principal.role.value!r} may not {permission.value}; roles that may: {', '.join(roles_with(permission))}"
            )
        return principal

    return check


def get_catalog(request: Request) -> Catalog:
    """The terminology catalog under the app's data directory (headers are read per call: no cache)."""
    return serving.catalog(request.app.state.settings)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def get_target_models(request: Request) -> list[str]:
    """The names of the target data models (OMOP CDM, FHIR R4, loaded ones): the targets of field projects."""
    return serving.target_catalog(request.app.state.settings).names()


TargetModelsDep = Annotated[list[str], Depends(get_target_models)]


def get_project(session: SessionDep, project_id: int) -> Project:
    return crud.get_project(session, project_id)


ProjectDep = Annotated[Project, Depends(get_project)]


def get_suggester_factory(request: Request) -> SuggesterFactory:
    return request.app.state.suggester_factory


SuggesterFactoryDep = Annotated[SuggesterFactory, Depends(get_suggester_factory)]


def suggester_for(project: ProjectDep, factory: SuggesterFactoryDep) -> SuggesterLike:
    return factory(project.target_terminology)


SuggesterDep = Annotated[SuggesterLike, Depends(suggester_for)]


def get_terminologies(request: Request) -> serving.Terminologies:
    return request.app.state.terminologies


TerminologiesDep = Annotated[serving.Terminologies, Depends(get_terminologies)]


def target_terminology(request: Request, terminology: str) -> serving.LazyTerminology:
    """A terminology as decisions see it: concepts by code from the catalog, read on first use."""
    return request.app.state.terminologies.target(terminology)


def target_of(request: Request, project: ProjectDep) -> serving.LazyTerminology:
    return target_terminology(request, project.target_terminology)


TargetDep = Annotated[serving.LazyTerminology, Depends(target_of)]


def if_match(
    if_match: Annotated[
        str | None, Header(description='The item version decided on, e.g. "3" (or body `version`).')
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if crud.stored_id(value) is None:
        raise Invalid(f'If-Match must be the item version as an ETag, e.g. "3"; got {if_match!r}')
    return int(value)


IfMatch = Annotated[int | None, Depends(if_match)]
