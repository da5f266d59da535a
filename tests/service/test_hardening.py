"""Bad input is always a 4xx problem, never a 500; load queues instead of failing; every code is addressable."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.settings import Settings
from service.store.db import engine_for
from service.store.tables import Role
from service.web.app import create_app

HUGE = [2**31, 2**63, 10**30]
PROBLEM = "application/problem+json"


def _is_problem(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("number", HUGE)
def test_integers_past_the_stores_range_are_4xx(service, number):
    project = service.ready_project()
    for path in (f"/projects/{number}", f"/projects/{number}/items", f"/projects/{project}/releases/{number}"):
        _is_problem(service.call("GET", path, Role.admin), 404, 422)
    for path in (f"/projects/{project}/items?offset={number}", f"/audit/events?project_id={number}"):
        assert service.call("GET", path, Role.admin).status_code in (200, 422)  # an empty page, or refused
    _is_problem(service.call("POST", f"/tokens/{number}/revoke", Role.admin), 404, 422)
    decided = service.call(
        "POST", f"/projects/{project}/items/GLU/decisions", Role.mapper, json={"action": "flag", "version": number}
    )
    _is_problem(decided, 409, 422, 428)
    top_k = service.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"top_k": number})
    _is_problem(top_k, 422)


@pytest.mark.parametrize("digits", ["¹", "٣", "²³"])
def test_unicode_digits_are_not_ids(service, digits):
    project = service.ready_project()
    _is_problem(service.call("GET", f"/projects/{digits}", Role.viewer), 404, 422)
    translate = service.call(
        "GET",
        "/fhir/ConceptMap/$translate",
        Role.viewer,
        params={"url": f"urn:crosswalk:conceptmap:{digits}", "code": "GLU"},
    )
    _is_problem(translate, 400, 422)
    headers = {"If-Match": f'"{digits}"'.encode()}
    decided = service.call(
        "POST", f"/projects/{project}/items/GLU/decisions", Role.mapper, json={"action": "flag"}, headers=headers
    )
    _is_problem(decided, 422)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"source_code,source_text\nGLU,Glucose\nNA,Sod\x00ium\n", "codes.csv, line 3: a NUL byte"),
        (
            b"source_code,source_text\n" + b"X" * 201 + b",Long code\n",
            "codes.csv, line 2: source code is 201 characters",
        ),
        (
            b"source_code,source_text,frequency\nGLU,Glucose,1e999\n",
            "codes.csv, line 2: frequency '1e999' is not a number",
        ),
        (
            b"source_code,source_text,frequency\nGLU,Glucose,99999999999\n",
            "codes.csv, line 2: frequency '99999999999' is over",
        ),
    ],
)
def test_an_import_the_store_cannot_hold_is_422_naming_the_line(service, data, says):
    project = service.project()
    response = service.import_csv(project, data)
    _is_problem(response, 422)
    assert says in response.json()["detail"]
    assert service.call("GET", f"/projects/{project}/items", Role.viewer).json()["total"] == 0  # nothing half-imported


def test_a_nul_character_in_a_body_is_4xx(service):
    project = service.ready_project()
    comment = service.call("POST", f"/projects/{project}/items/GLU/comments", Role.mapper, json={"text": "a\x00b"})
    assert comment.status_code in (200, 422)  # SQLite keeps it; PostgreSQL cannot: refused, not a 500
    _is_problem(service.call("GET", f"/projects/{project}/items/A%00B", Role.viewer), 404, 422)


def test_a_wrong_method_is_405_with_allow(sqlite_service):
    response = sqlite_service.call("DELETE", "/projects", Role.admin)
    _is_problem(response, 405)
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_chunked_upload_over_the_limit_is_413(sqlite_service, monkeypatch):
    from service.api import problems

    project = sqlite_service.project()
    app = sqlite_service.app
    for middleware in app.user_middleware:
        if middleware.cls is problems.BodyLimit:
            middleware.kwargs["max_bytes"] = 1000
    app.middleware_stack = None  # rebuilt with the smaller limit on the next request

    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="codes.csv"\r\n\r\n'
        yield b"source_code,source_text\n"
        for i in range(100):
            yield f"C{i},text {i}\n".encode()
        yield b"\r\n--b--\r\n"

    headers = {**sqlite_service.auth(Role.mapper), "Content-Type": "multipart/form-data; boundary=b"}
    response = sqlite_service.client.post(f"/projects/{project}/imports", content=chunks(), headers=headers)
    _is_problem(response, 413)


def test_openapi_declares_the_client_errors(sqlite_service):
    paths = sqlite_service.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if not operation.get("parameters") and "requestBody" not in operation:
                continue
            assert {"400", "422"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)


SLASHED = b"source_code,source_text,frequency\nNA/K,Sodium potassium ratio serum,10\nGLU,Glucose serum,900\n"


def test_a_code_with_a_slash_can_be_opened_decided_and_traced(service):
    project = service.project()
    assert service.import_csv(project, SLASHED).status_code == 200
    service.suggest(project)
    item = service.item(project, "NA/K")
    assert item["code"] == "NA/K"
    decided = service.decide(project, "NA/K", action="flag", comment="ratio, not a concentration")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "flagged"
    history = service.call("GET", f"/projects/{project}/items/NA/K/history", Role.viewer)
    assert history.status_code == 200
    assert [e["action"] for e in history.json()][-1].startswith("decision")
    comment = service.call(
        "POST", f"/projects/{project}/items/NA/K/comments", Role.mapper, json={"text": "see the lab"}
    )
    assert comment.status_code == 200 and comment.json()["code"] == "NA/K"
    assert service.call("GET", f"/projects/{project}/items/NA/K/", Role.viewer).status_code == 404  # not another code


def test_more_clients_than_connections_queue_instead_of_failing(db_url, tmp_path, suggester):
    """Far more concurrent requests than connections and worker threads: each waits its turn, none
    holds a connection while it waits, so all are answered (before, the pool timed out into 500s)."""
    settings = Settings(home=tmp_path, database_url=db_url, db_pool_size=2, db_max_overflow=0)
    from service.store.db import upgrade

    engine = engine_for(db_url, 2, 0)
    upgrade(engine)
    app = create_app(settings, suggester_factory=lambda name: suggester)
    from service import crud
    from service.store.db import session_scope

    with session_scope(engine) as session:
        token = crud.create_token(session, "viewer-1", Role.viewer, "test-setup")[1]

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers, timeout=120
        ) as client:
            answers = await asyncio.gather(*(client.get("/projects") for _ in range(80)))
        return [a.status_code for a in answers]

    try:
        assert asyncio.run(run()) == [200] * 80
    finally:
        engine.dispose()
