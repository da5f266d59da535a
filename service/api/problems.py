"""Errors as RFC 9457 problem+json: every 4xx/5xx, with a detail that says what to fix.

Also the upload limit: a body over MAX_BODY_BYTES is refused with 413 before it is read.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from service.store.errors import StoreError, TooLarge

MAX_BODY_BYTES = 20 * 1024 * 1024
PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("crosswalk.api")


class Problem(BaseModel):
    """RFC 9457 problem details; StaleVersion problems add `current`, the item as it is now."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> JSONResponse:
    title = title or HTTPStatus(status).phrase
    kind = "about:blank" if title == HTTPStatus(status).phrase else "urn:crosswalk:problem:" + title.lower().replace(" ", "-")
    body = Problem(type=kind, title=title, status=status, detail=detail, **extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all problem+json."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


def install(app: FastAPI) -> None:
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)


async def _store_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StoreError)
    return problem(error.status, error.detail, error.title, **error.extra)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).description
    return problem(error.status_code, detail)


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
    route = getattr(request.scope.get("route"), "path", "?")
    log.error("unexpected %s on %s %s; nothing was written", type(error).__name__, request.method, route)
    return problem(500, "an unexpected error; the request was not applied. The server log names the error type.")


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
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise TooLarge(f"the request body is over the {self.max_bytes // (1024 * 1024)} MB limit; split the file")
            return message

        return counted

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // (1024 * 1024)} MB"
        response = problem(413, f"the request body is over the {limit} limit; split the file and import it in parts")
        await response(scope, receive, send)

