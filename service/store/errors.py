"""Errors the store raises for bad requests; the API renders them as problem+json, the CLI as one line."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """A request the store refused; `status` is the HTTP status the API answers with."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFound(StoreError):
    status, title = 404, "Not found"


class Forbidden(StoreError):
    status, title = 403, "Forbidden"


class Conflict(StoreError):
    status, title = 409, "Conflict"


class StaleVersion(Conflict):
    """A decision made against an older version of the item; `extra['current']` is the item now."""

    title = "Stale version"


class Invalid(StoreError):
    status, title = 422, "Invalid request"


class Unsupported(Invalid):
    status, title = 415, "Unsupported media type"


class PreconditionRequired(StoreError):
    status, title = 428, "Precondition required"


class TooLarge(StoreError):
    status, title = 413, "Content too large"


class Unavailable(StoreError):
    """Something the request needs (a Dask cluster) is not answering: nothing was changed; retry later."""

    status, title = 503, "Service unavailable"


class Unauthorized(StoreError):
    status, title = 401, "Unauthorized"
