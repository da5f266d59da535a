"""Liveness for load balancers and `benchmarks/api.py`."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import allow
from service.web.roles import Permission

router = APIRouter(tags=["health"])


@router.get("/health", **allow(Permission.public))
def health() -> dict[str, str]:
    """Whether the service is up (no token needed)."""
    return {"status": "ok"}
