"""The audit log: events by project or entity, and verification of the hash chain and current state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service import audit
from service.api.deps import allow
from service.living.dual import withhold_open_choices
from service.store.tables import AuditEventPublic, VerifyResult
from service.web.deps import CurrentPrincipal, SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events", response_model=list[AuditEventPublic], **allow(Permission.audit, 422))
def list_events(
    session: SessionDep,
    principal: CurrentPrincipal,
    project_id: int | None = None,
    entity: Annotated[str | None, Query(description="e.g. item:12, release:3, token:1")] = None,
) -> list[AuditEventPublic]:
    """Audit events, oldest first, optionally for one project or entity."""
    events = audit.history(session, entity=entity, project_id=project_id)
    return withhold_open_choices(session, events, principal.name)  # dual mapping stays blind (service/living/dual.py)


@router.get("/verify", response_model=VerifyResult, **allow(Permission.audit))
def verify(session: SessionDep) -> VerifyResult:
    """Recompute the hash chain and compare every audited row with its latest event."""
    return audit.verify(session)
