"""Browser sessions are the server's: a random id that is no API token, ended by logout, by expiry and by
revoking the token that opened them."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient
from sqlmodel import select

from service import audit
from service.store.db import session_scope
from service.store.sessions import UiSession
from service.store.tables import Role
from tests.ui.conftest import csrf_of, login


def _cookie(client: TestClient) -> str:
    return next(c.value for c in client.cookies.jar if c.name == "cw_session")


def _with_cookie(ui_service, value: str) -> TestClient:
    client = TestClient(ui_service.app, base_url="http://testserver")
    client.cookies.set("cw_session", value, path="/ui")
    return client


def test_the_session_cookie_is_not_an_api_token(ui_service):
    client = login(ui_service, Role.admin)
    cookie = _cookie(client)
    assert cookie != ui_service.tokens[Role.admin] and not cookie.startswith("cw_")
    assert ui_service.call("GET", "/projects", cookie).status_code == 401  # useless as a bearer token
    with session_scope(ui_service.engine) as session:
        [row] = session.exec(select(UiSession)).all()
    assert row.session_hash == hashlib.sha256(cookie.encode()).hexdigest()  # the store keeps only its hash


def test_logout_ends_the_session_on_the_server(ui_service):
    client = login(ui_service, Role.viewer)
    cookie = _cookie(client)
    copy = _with_cookie(ui_service, cookie)  # e.g. a cookie lifted from the browser before the logout
    assert copy.get("/ui/").status_code == 200
    page = client.get("/ui/").text
    assert client.post("/ui/logout", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
    assert copy.get("/ui/", follow_redirects=False).headers["location"].startswith("/ui/login")
    assert login(ui_service, Role.viewer).get("/ui/").status_code == 200  # signing in again opens a new one
    with session_scope(ui_service.engine) as session:
        events = [e for e in audit.history(session) if e.entity.startswith("ui_session:")]
        result = audit.verify(session)
    assert [e.action for e in events] == ["session.login", "session.logout", "session.login"]
    assert all("session_hash" not in (e.after or {}) for e in events) and result.ok, result.problems


def test_an_expired_session_asks_for_a_new_login(ui_service):
    client = login(ui_service, Role.viewer)
    with session_scope(ui_service.engine) as session:
        row = session.exec(select(UiSession)).one()
        row.expires_at = "2000-01-01T00:00:00.000000Z"  # behind the audit's back: only expiry matters here
        session.add(row)
    assert client.get("/ui/", follow_redirects=False).headers["location"].startswith("/ui/login")


def test_revoking_the_token_ends_every_session_it_opened(ui_service):
    first, second = login(ui_service, Role.mapper), login(ui_service, Role.mapper)
    token_id = next(t["id"] for t in ui_service.call("GET", "/tokens").json() if t["name"] == "mapper-1")
    assert ui_service.call("DELETE", f"/tokens/{token_id}").status_code in (200, 204)
    for client in (first, second):
        assert client.get("/ui/", follow_redirects=False).status_code == 303
