"""Login with an API token, logout, and the projects overview that a login lands on."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from service import crud
from service.ui import session as sessions
from service.ui.render import render
from service.ui.session import BrowserDep, FormDep
from service.web.deps import SessionDep

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    return _login_form(request, sessions.safe_next(next))


def _login_form(request: Request, next_url: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    csrf = sessions.new_login_csrf()
    response = render(request, "login.html", status_code, browser=None, next_url=next_url, csrf=csrf, error=error)
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE, csrf, max_age=3600, path=sessions.COOKIE_PATH, httponly=True, samesite="strict"
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep):
    sessions.check_origin(request)
    form = await request.form()
    token, csrf, next_url = (str(form.get(k) or "") for k in ("token", "csrf", "next"))
    next_url = sessions.safe_next(next_url)
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not csrf or not hmac.compare_digest(csrf, expected):
        return _login_form(request, next_url, "The login form expired; please try again.", 400)
    found = crud.token_for(session, token.strip()) if token.strip() else None
    if found is None:
        return _login_form(request, next_url, "Unknown or revoked API token. Ask an admin for one.", 401)
    response = RedirectResponse(next_url, status_code=303)
    sessions.set_session(response, request, sessions.open_session(session, found))
    return response


@router.post("/logout")
def logout(_form: FormDep, browser: BrowserDep, session: SessionDep) -> RedirectResponse:
    """Ends the session in the store, so a copy of the cookie no longer works either."""
    sessions.end_session(session, browser)
    response = RedirectResponse("/ui/login", status_code=303)
    sessions.clear_session(response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, browser: BrowserDep, session: SessionDep) -> HTMLResponse:
    projects = [crud.project_public(session, p) for p in crud.list_projects(session)]
    return render(request, "projects.html", browser=browser, projects=projects)
