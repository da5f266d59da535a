"""The API's route options: each route's permission check and its documented problem responses."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from service.api.problems import documented
from service.web.deps import requires
from service.web.roles import Permission


def allow(permission: Permission, *errors: int, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    """Route options: the permission check, its `x-permission` in OpenAPI, and the documented responses."""
    options: dict[str, Any] = {"openapi_extra": {"x-permission": permission.value}}
    responses: dict[int | str, dict[str, Any]] = {200: ok} if ok else {}
    if permission == Permission.public:
        return options | {"responses": responses | documented(*errors)}
    responses |= documented(401, 403, *errors)
    return options | {"dependencies": [Depends(requires(permission))], "responses": responses}
