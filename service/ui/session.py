"""Browser sessions on the service's own API tokens, and CSRF protection for every form.

The session cookie holds the API token itself (HttpOnly, SameSite=Strict, path /ui): each request
looks the token up like the API does, so a revoked token logs the browser out at once and the
audit log names the token's owner. Forms carry a CSRF value derived from the token (an attacker
page knows neither), checked on every POST together with the Origin header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from service import crud
from service.store.tables import Role
from service.web.deps import Principal, SessionDep
from service.web.roles import Permission, allowed, roles_with

SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"  # double-submit value for the login form (no session yet)
COOKIE_PATH = "/ui"
SESSION_MAX_AGE = 12 * 3600  # a working day; the token itself stays valid until revoked


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
    """Who is logged in, with the form CSRF value of their session."""

    principal: Principal
    csrf: str

    def can(self, permission: Permission | str) -> bool:
        return allowed(self.principal.role, Permission(permission))

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            role = self.principal.role.value
            raise NotAllowed(f"role {role!r} may not {permission.value}; roles that may: {', '.join(roles_with(permission))}")


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"crosswalk-ui-csrf", hashlib.sha256).hexdigest()


def current_browser(request: Request, session: SessionDep) -> Browser:
    token = request.cookies.get(SESSION_COOKIE)
    found = crud.token_for(session, token) if token else None
    if found is None:  # after signing in, a GET comes back here; a refused POST goes to the start page
        raise LoginRequired(_here(request) if request.method == "GET" else "/ui/")
    return Browser(Principal(name=found.name, role=Role(found.role)), csrf_for(token))


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


def set_session(response: Response, request: Request, token: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_MAX_AGE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure
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
