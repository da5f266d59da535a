"""The review UI: server-rendered pages under /ui for terminology teams and ops, on the API's crud.

`install(app)` adds the pages (left out of the OpenAPI document), their static files, `/` -> `/ui/`,
and error pages: under /ui an error is an HTML page with what to do, elsewhere still problem+json.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.store.errors import StoreError
from service.ui import routes_auth, routes_ops, routes_releases, routes_review
from service.ui.render import HERE, render
from service.ui.session import BadForm, LoginRequired, NotAllowed, login_redirect

ROUTERS = (routes_auth.router, routes_review.router, routes_releases.router, routes_ops.router)


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_api_route("/", _root, include_in_schema=False)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(BadForm, _bad_form)
    for error_type in (StoreError, StarletteHTTPException, RequestValidationError):
        _html_under_ui(app, error_type)


def _root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


async def _login_required(_request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    return login_redirect(error.next_url)


async def _not_allowed(request: Request, error: Exception) -> Response:
    assert isinstance(error, NotAllowed)
    return _error_page(request, 403, error.message)


async def _bad_form(request: Request, _error: Exception) -> Response:
    return _error_page(
        request, 403, "This form was not sent from this site or has expired; reload the page and try again."
    )


def _html_under_ui(app: FastAPI, error_type: type[Exception]) -> None:
    """Wrap the API's handler: pages get an HTML error page, the API keeps its problem+json."""
    api_handler = app.exception_handlers[error_type]

    async def handler(request: Request, error: Exception) -> Response:
        if not request.url.path.startswith("/ui"):
            return await api_handler(request, error)
        status, detail = _status_detail(error)
        return _error_page(request, status, detail)

    app.add_exception_handler(error_type, handler)


def _status_detail(error: Exception) -> tuple[int, str]:
    if isinstance(error, StoreError):
        return error.status, error.detail
    if isinstance(error, StarletteHTTPException):
        detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).description
        return error.status_code, detail
    return 422, "this address has a malformed parameter; go back and use the page's links and forms"


def _error_page(request: Request, status: int, detail: str) -> Response:
    return render(
        request, "error.html", status, browser=None, status=status, title=HTTPStatus(status).phrase, detail=detail
    )
