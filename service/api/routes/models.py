"""Mapping models: the registered versions, reloading the served champion, and a suggestion's lineage."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service import retraining
from service.api.deps import allow
from service.store.errors import Conflict
from service.store.registry import Lineage, ModelVersionPublic, ReloadResult
from service.web.deps import SessionDep
from service.web.roles import Permission

router = APIRouter(tags=["models"])


@router.get("/models", response_model=list[ModelVersionPublic], **allow(Permission.read))
def list_models(request: Request) -> list[ModelVersionPublic]:
    """Registered model versions with their aliases (champion, challenger) and held-out metrics."""
    registry = retraining.existing_registry(request.app.state.settings)
    return [] if registry is None else retraining.list_versions(registry)


@router.post("/models/reload", response_model=ReloadResult, **allow(Permission.models, 409))
def reload_models(request: Request) -> ReloadResult:
    """Load the current champion of every served terminology; requests in flight finish on the old one."""
    reload = getattr(request.app.state.suggester_factory, "reload", None)
    if reload is None:
        raise Conflict("this service runs a fixed suggester (started with --suggester-factory); nothing to reload")
    return ReloadResult(served=reload())


@router.get("/suggestions/{suggestion_id}/lineage", response_model=Lineage, **allow(Permission.read, 404, 422))
def suggestion_lineage(request: Request, session: SessionDep, suggestion_id: int) -> Lineage:
    """Suggestion -> model version -> MLflow run -> release -> the approvals it was trained on."""
    return retraining.lineage(session, request.app.state.settings, suggestion_id)
