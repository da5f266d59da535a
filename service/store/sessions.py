"""Browser sessions of the review UI: server-side, so logging out (or revoking the API token behind them)
ends them at once, and the cookie is never a credential for the API.

The cookie holds a random id; a row keeps only its sha256 (a copy of the table opens no session), the API
token that signed in, and when the session expires or was ended. Logins and logouts are audited like every
other write, with the hash left out of the events.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from service.store.audited import audited
from service.store.tables import utcnow


class UiSession(SQLModel, table=True):
    __tablename__ = "ui_session"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(max_length=64, unique=True)  # sha256 of the cookie's random id
    token_id: int = Field(foreign_key="api_token.id", index=True)  # a revoked token ends its sessions
    created_at: str = Field(default_factory=utcnow)
    expires_at: str  # ISO UTC, compared as text like every other timestamp of the store
    ended_at: str | None = None  # set at logout


audited(UiSession, "ui_session", hidden=("session_hash",))
