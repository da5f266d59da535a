"""Browser sessions, server-side, and CSRF protection for every form.

Signing in with an API token opens a session (`service.store.sessions.UiSession`): the cookie (HttpOnly,
SameSite=Strict, path /ui) holds a random id that is not an API token and opens nothing outside /ui; the
store keeps its hash, its expiry and the token behind it. Logging out ends the session, and so does
revoking that token, at the next request; the audit log names the token's owner. Forms carry a CSRF
value derived from the session id (an attacker page knows neither), checked on every POST together with
the Origin header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from service import audit
from service.store.sessions import UiSession
from service.store.tables import ApiToken, Role, utcnow
from service.web.deps import Principal, SessionDep
from service.web.roles import Permission, allowed, roles_with

SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"  # double-submit value for the login form (no session yet)
COOKIE_PATH = "/ui"
SESSION_MAX_AGE = 12 * 3600  # a working day; then sign in again (the token stays valid until revoked)


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the login page, then back here."""

    def __init__(self, next_url: str):
        self.next_url = next_url


class NotAllowed(Exception):
    """A logged-in user without the permission an action needs; rendered as a 403 page."""

    def __init__(self, message: str):
        self.message = message


class BadForm(Exception):
    """A POST without a valid CSRF value or from another origin; rendered as a 403 page."""


@dataclass(frozen=True)
class Browser:
    """Who is logged in, with their session (its row id) and the form CSRF value of it."""

    principal: Principal
    csrf: str
    session_id: int

    def can(self, permission: Permission | str) -> bool:
        return allowed(self.principal.role, Permission(permission))

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            role = self.principal.role.value
            raise NotAllowed(
                f"role {role!r} may not {permission.value}; roles that may: {', '.join(roles_with(permission))}"
            )


def csrf_for(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"crosswalk-ui-csrf", hashlib.sha256).hexdigest()


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(db: Session, token: ApiToken) -> str:
    """A new session for a signed-in token; returns the cookie value (shown to nobody else, stored hashed)."""
    session_id = secrets.token_urlsafe(32)
    expires = (datetime.now(UTC) + timedelta(seconds=SESSION_MAX_AGE)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    row = UiSession(session_hash=_hash(session_id), token_id=token.id, expires_at=expires)
    audit.record(db, token.name, "session.login", row)
    return session_id


def end_session(db: Session, browser: Browser) -> None:
    row = db.get(UiSession, browser.session_id)
    if row is not None and row.ended_at is None:
        audit.record(db, browser.principal.name, "session.logout", row, {"ended_at": utcnow()})


def live_session(db: Session, session_id: str) -> tuple[UiSession, ApiToken] | None:
    """The session and its token, unless the session ended or expired or its token was revoked."""
    query = (
        select(UiSession, ApiToken)
        .join(ApiToken, col(ApiToken.id) == col(UiSession.token_id))
        .where(
            UiSession.session_hash == _hash(session_id),
            col(UiSession.ended_at).is_(None),
            UiSession.expires_at > utcnow(),
            col(ApiToken.revoked).is_(False),
        )
    )
    return db.exec(query).first()


def current_browser(request: Request, session: SessionDep) -> Browser:
    session_id = request.cookies.get(SESSION_COOKIE)
    found = live_session(session, session_id) if session_id else None
    if found is None:  # after signing in, a GET comes back here; a refused POST goes to the start page
        raise LoginRequired(_here(request) if request.method == "GET" else "/ui/")
    row, token = found
    return Browser(Principal(name=token.name, role=Role(token.role)), csrf_for(session_id), row.id)


BrowserDep = Annotated[Browser, Depends(current_browser)]


async def checked_form(request: Request, browser: BrowserDep) -> dict[str, str]:
    """The POSTed form, after the Origin and CSRF checks; only text fields are kept."""
    check_origin(request)
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, browser.csrf):
        raise BadForm()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def check_origin(request: Request) -> None:
    """A browser names the page's origin on a POST; one from another site is refused."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise BadForm()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_session(response: Response, request: Request, session_id: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def safe_next(url: str | None) -> str:
    """Only a path inside the UI: never an open redirect to another site."""
    if not url or not url.startswith("/ui") or url.startswith("//") or "\\" in url:
        return "/ui/"
    return url


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def login_redirect(next_url: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/login?next={quote(next_url, safe='')}", status_code=303)
