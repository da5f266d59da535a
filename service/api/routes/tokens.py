"""API tokens (admin only): created with a role, shown once, stored as a sha256, revocable."""

from __future__ import annotations

from fastapi import APIRouter

from service import crud
from service.api.deps import allow
from service.store.tables import TokenCreate, TokenCreated, TokenPublic
from service.web.deps import CurrentPrincipal, SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenCreated, **allow(Permission.admin, 422))
def create_token(data: TokenCreate, session: SessionDep, principal: CurrentPrincipal) -> TokenCreated:
    """Create a bearer token for a role; the token is in this response only."""
    token, secret = crud.create_token(session, data.name, data.role, principal.name)
    return TokenCreated.model_validate(token, update={"token": secret})


@router.get("", response_model=list[TokenPublic], **allow(Permission.admin))
def list_tokens(session: SessionDep) -> list[TokenPublic]:
    """All tokens, without their secrets."""
    return [TokenPublic.model_validate(t) for t in crud.list_tokens(session)]


@router.delete("/{token_id}", response_model=TokenPublic, **allow(Permission.admin, 404, 422))
def revoke_token(token_id: int, session: SessionDep, principal: CurrentPrincipal) -> TokenPublic:
    """Revoke a token; requests with it get 401 from now on."""
    return TokenPublic.model_validate(crud.revoke_token(session, token_id, principal.name))
