"""Errors as RFC 9457 problem+json: every 4xx/5xx, with a detail that says what to fix.

Also the upload limit: a body over MAX_BODY_BYTES is refused with 413 before it is read.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.store.errors import StoreError

MAX_BODY_BYTES = 20 * 1024 * 1024
PROBLEM_JSON = "application/problem+json"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
log = logging.getLogger("crosswalk.api")


class Problem(BaseModel):
    """RFC 9457 problem details; StaleVersion problems add `current`, the item as it is now."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem(
    status: int, detail: str, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    title = title or HTTPStatus(status).phrase
    kind = (
        "about:blank"
        if title == HTTPStatus(status).phrase
        else "urn:crosswalk:problem:" + title.lower().replace(" ", "-")
    )
    body = Problem(type=kind, title=title, status=status, detail=detail, **extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else headers
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all problem+json."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


def document_client_errors(route: APIRoute) -> None:
    """Every operation that takes input may answer 400 (malformed) and 422 (invalid); one with a body, 413."""
    takes_input, takes_body = _inputs(route.dependant)
    if takes_input or takes_body:
        route.responses = documented(400, 422) | route.responses
    if takes_body:
        route.responses = documented(413) | route.responses


def _inputs(dependant: Dependant) -> tuple[bool, bool]:
    """Whether a route (with its dependencies) reads parameters, and whether it reads a body."""
    params = bool(dependant.path_params or dependant.query_params or dependant.header_params)
    body = bool(dependant.body_params)
    for sub in dependant.dependencies:
        sub_params, sub_body = _inputs(sub)
        params, body = params or sub_params, body or sub_body
    return params, body


def install(app: FastAPI) -> None:
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StatementError, _refused_value)
    app.add_exception_handler(OverflowError, _refused_value)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)


async def _store_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StoreError)
    return problem(error.status, error.detail, error.title, **error.extra)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).description
    headers = dict(error.headers or {})
    if error.status_code == 405:  # Starlette names the first route's methods; the path may have several routes
        headers["Allow"] = ", ".join(allowed_methods(request))
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem(error.status_code, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this request's path."""
    routes = request.app.router.routes
    return [m for m in HTTP_METHODS if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]


async def _refused_value(request: Request, error: Exception) -> JSONResponse:
    """A value the store cannot hold (a number past its integer range, a NUL character) is the request's
    fault: 422. Anything else the database raises stays an unexpected error."""
    cause = error.orig if isinstance(error, StatementError) else error
    if not isinstance(error, DataError) and not isinstance(cause, OverflowError | ValueError):
        return unexpected(request, error)
    log.info("store refused a value on %s %s: %s", request.method, route_template(request), type(cause).__name__)
    detail = "a value in the request is out of range for the store (a number over 2147483647, or a NUL character)"
    return problem(422, detail + "; correct it and send the request again", "Invalid request")


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error", "invalid JSON")
        return problem(400, f"the request body is not valid JSON ({reason}); send a JSON object", "Malformed JSON")
    # Never echo `input`: it may hold source texts.
    where = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in where)
    return problem(422, detail, "Invalid request", errors=where)


def unexpected(request: Request, error: Exception) -> JSONResponse:
    """A 500 problem; the log gets the type and route only: messages and tracebacks can carry PHI or tokens."""
    where = f"{request.method} {route_template(request)}"
    log.error("unexpected %s on %s; nothing was written", type(error).__name__, where)
    return problem(500, "an unexpected error; the request was not applied. The server log names the error type.")


def route_template(request: Request) -> str:
    """The matched route as the OpenAPI document writes it (`{code}`, not `{code:path}`), or "-"."""
    route = request.scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", "-")


class BodyLimit:
    """Refuse bodies larger than `max_bytes` (declared or streamed) with 413, before any handler runs."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        await self._streamed(scope, receive, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a length (chunked) is counted as it is read: past the limit, the client gets
        the 413 at once and the handler sees a disconnect (whatever it answers then is dropped)."""
        seen, refused = 0, False

        async def counted() -> dict:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: dict) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // (1024 * 1024)} MB"
        response = problem(413, f"the request body is over the {limit} limit; split the file and import it in parts")
        await response(scope, receive, send)
