"""The API contract: every route × every role, problem+json errors, a complete OpenAPI document,
FHIR $translate, and logs free of source texts and tokens."""

from __future__ import annotations

import logging
import re

import pytest
from fhir.resources.parameters import Parameters

from service.store.tables import Role
from service.web.roles import ROLE_PERMISSIONS
from tests.service.conftest import BACKENDS, FakeSuggester, Service, postgres_url

# The issue's rules, written out independently of service/web/roles.py.
EXPECTED_ROLES = {
    "public": {"viewer", "mapper", "reviewer", "admin", "ops", "ml"},
    "read": {"viewer", "mapper", "reviewer", "admin", "ops", "ml"},
    "edit": {"mapper", "reviewer", "admin"},
    "decide": {"mapper", "reviewer", "admin"},
    "confirm": {"reviewer", "admin"},
    "release": {"reviewer", "admin"},
    "audit": {"reviewer", "admin", "ops"},
    "admin": {"admin"},
    "monitor": {"ops", "admin"},
    "models": {"ml", "admin"},
}
EXPECTED_ROUTES = {
    ("get", "/health"): "public",
    ("get", "/projects"): "read",
    ("post", "/projects"): "edit",
    ("patch", "/projects/{project_id}"): "edit",
    ("get", "/projects/{project_id}"): "read",
    ("delete", "/projects/{project_id}"): "admin",
    ("post", "/projects/{project_id}/archive"): "admin",
    ("post", "/projects/{project_id}/unarchive"): "admin",
    ("post", "/projects/{project_id}/imports"): "edit",
    ("post", "/projects/{project_id}/source-schema"): "edit",
    ("post", "/projects/{project_id}/source-schema/database"): "edit",
    ("post", "/projects/{project_id}/suggestions"): "edit",
    ("get", "/projects/{project_id}/search"): "read",
    ("get", "/projects/{project_id}/items"): "read",
    ("get", "/projects/{project_id}/items/{code}"): "read",
    ("post", "/projects/{project_id}/items/{code}/decisions"): "decide",
    ("post", "/projects/{project_id}/items/{code}/confirmations"): "confirm",
    ("post", "/projects/{project_id}/items/{code}/reverts"): "decide",
    ("post", "/projects/{project_id}/items/{code}/comments"): "decide",
    ("get", "/projects/{project_id}/items/{code}/history"): "read",
    ("post", "/projects/{project_id}/releases"): "release",
    ("get", "/projects/{project_id}/releases"): "read",
    ("get", "/projects/{project_id}/releases/{number}"): "read",
    ("get", "/projects/{project_id}/releases/{number}/diff"): "read",
    ("get", "/projects/{project_id}/releases/{number}/export"): "read",
    ("get", "/audit/events"): "audit",
    ("get", "/audit/verify"): "audit",
    ("get", "/tokens"): "admin",
    ("post", "/tokens"): "admin",
    ("delete", "/tokens/{token_id}"): "admin",
    ("get", "/fhir/ConceptMap/$translate"): "read",
    ("post", "/fhir/ConceptMap/$translate"): "read",
    ("get", "/terminology-releases"): "read",
    ("get", "/terminology-releases/{number}"): "read",
    ("get", "/projects/{project_id}/reopenings"): "read",
    ("post", "/projects/{project_id}/source-updates"): "edit",
    ("get", "/projects/{project_id}/items/{code}/reuse"): "read",
    ("post", "/projects/{project_id}/items/{code}/reuse"): "decide",
    ("get", "/projects/{project_id}/reuse"): "read",
    ("post", "/projects/{project_id}/bulk/reuse"): "confirm",
    ("post", "/projects/{project_id}/dual"): "confirm",
    ("get", "/projects/{project_id}/dual"): "read",
    ("get", "/projects/{project_id}/dual/agreement"): "read",
    ("get", "/projects/{project_id}/dual/{code}"): "read",
    ("post", "/projects/{project_id}/dual/{code}/choices"): "decide",
    ("post", "/projects/{project_id}/dual/{code}/reconciliation"): "confirm",
    ("post", "/projects/{project_id}/bulk/approve"): "confirm",
    ("post", "/projects/{project_id}/bulk/reassign"): "confirm",
    ("post", "/projects/{project_id}/bulk/resuggest"): "edit",
    ("post", "/feeds"): "monitor",
    ("get", "/feeds"): "read",
    ("get", "/feeds/{feed}"): "read",
    ("patch", "/feeds/{feed}"): "monitor",
    ("get", "/feeds/{feed}/contract"): "read",
    ("put", "/feeds/{feed}/contract"): "monitor",
    ("post", "/feeds/{feed}/webhooks"): "monitor",
    ("get", "/feeds/{feed}/webhooks"): "read",
    ("get", "/feeds/{feed}/deliveries"): "read",
    ("post", "/feeds/{feed}/deliveries"): "monitor",
    ("post", "/feeds/{feed}/batches"): "monitor",
    ("get", "/feeds/{feed}/batches"): "read",
    ("get", "/feeds/{feed}/batches/{number}"): "read",
    ("get", "/feeds/{feed}/batches/{number}/report"): "read",
    ("get", "/feeds/{feed}/window"): "read",
    ("post", "/feeds/{feed}/messages"): "monitor",
    ("get", "/feeds/{feed}/dead-letters"): "read",
    ("get", "/feeds/{feed}/batches/{number}/messages"): "read",
    ("get", "/projects/{project_id}/messages"): "read",
    ("get", "/feeds/{feed}/alerts"): "read",
    ("get", "/feeds/{feed}/alerts/{uid}/lineage"): "read",
    ("post", "/feeds/{feed}/alerts/{uid}/acknowledge"): "monitor",
    ("post", "/feeds/{feed}/alerts/{uid}/resolve"): "monitor",
    ("get", "/models"): "read",
    ("post", "/models/reload"): "models",
    ("get", "/suggestions/{suggestion_id}/lineage"): "read",
}


@pytest.fixture(scope="module", params=BACKENDS)
def api(request, tmp_path_factory, monkeypatch_module):
    """One app with a released project per backend, shared by the matrix (its requests change nothing)."""
    home = tmp_path_factory.mktemp("api")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'store.db'}"
    else:
        urls = postgres_url()
        url = next(urls)
        request.addfinalizer(lambda: next(urls, None))  # drops the schema
    service = Service(url, home, FakeSuggester(), monkeypatch_module)
    project = service.ready_project()
    service.decide(project, "GLU", action="approve")
    service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={})
    return service


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def operations(app) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, ops in app.openapi()["paths"].items() for method, op in ops.items()]


def test_the_role_table_is_the_issues(api):
    for permission, roles in EXPECTED_ROLES.items():
        if permission != "public":
            assert {r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms} == roles, permission


def test_every_route_declares_the_expected_permission(api):
    declared = {(method, path): op.get("x-permission") for method, path, op in operations(api.app)}
    assert declared == EXPECTED_ROUTES


def _request(api, method: str, path: str, role: Role | None):
    """A request that passes routing; write bodies are invalid, so an allowed role gets 422, not a change."""
    concrete = path.format(
        project_id=1, code="GLU", number=1, token_id="not-a-number", feed=1, uid="0123abcd", suggestion_id=1
    )
    headers = api.auth(role) if role else {}
    params = {"base": 1, "format": "fhir-r4", "q": "glucose", "code": "GLU", "project": "1"}
    body = {"json": ["not", "an", "object"]} if method in ("post", "delete") else {}
    return api.client.request(method.upper(), concrete, headers=headers, params=params, **body)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED_ROUTES))
@pytest.mark.parametrize("role", list(Role))
def test_role_matrix(api, method, path, role):
    permission = EXPECTED_ROUTES[(method, path)]
    response = _request(api, method, path, role)
    if role.value in EXPECTED_ROLES[permission]:
        assert response.status_code not in (401, 403) and response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert role.value in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in EXPECTED_ROUTES.items() if v != "public"))
def test_no_or_a_bad_token_is_401(api, method, path):
    assert _request(api, method, path, None).status_code == 401
    response = _request(api, method, path, "cw_not-a-real-token")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_a_revoked_token_stops_working(sqlite_service):
    token = sqlite_service.make_token(Role.viewer, "leaver")
    assert sqlite_service.call("GET", "/projects", token).status_code == 200
    token_id = next(t["id"] for t in sqlite_service.call("GET", "/tokens").json() if t["name"] == "leaver")
    assert sqlite_service.call("DELETE", f"/tokens/{token_id}").json()["revoked"] is True
    assert sqlite_service.call("GET", "/projects", token).status_code == 401


def test_tokens_are_shown_once_and_stored_hashed(sqlite_service):
    created = sqlite_service.call("POST", "/tokens", json={"name": "bob", "role": "reviewer"}).json()
    assert created["token"].startswith("cw_")
    assert sqlite_service.call("GET", "/projects", created["token"]).status_code == 200
    listed = sqlite_service.call("GET", "/tokens").text
    assert created["token"] not in listed
    with sqlite_service.engine.connect() as connection:
        dump = "\n".join(connection.exec_driver_sql("SELECT * FROM api_token").fetchall().__repr__() for _ in [0])
    assert created["token"] not in dump


def test_openapi_documents_every_operation(api):
    for method, path, op in operations(api.app):
        where = f"{method.upper()} {path}"
        assert op.get("summary") and not re.fullmatch(r"[A-Z][a-z]+( [A-Z][a-z]+)*", op["summary"]), where
        assert "200" in op["responses"] or "201" in op["responses"], where
        success = op["responses"].get("200") or op["responses"]["201"]
        assert success.get("content"), where
        if op["x-permission"] != "public":
            for status in ("401", "403"):
                assert "application/problem+json" in op["responses"][status]["content"], where
        if path.count("{"):
            assert "404" in op["responses"] or "422" in op["responses"], where


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "phrase"),
    [
        (
            "POST",
            "/projects",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ("POST", "/projects", {"json": {"name": "x"}}, 422, "source_system"),
        ("GET", "/projects/42", {}, 404, "no project '42'"),
        ("GET", "/projects/1/items/NOPE", {}, 404, "no source code 'NOPE'"),
        ("GET", "/projects/1/releases/9/export?format=sssom", {}, 404, "no release 9"),
        ("GET", "/nowhere", {}, 404, "Not Found"),
        (
            "POST",
            "/projects/1/items/GLU/decisions",
            {"json": {"action": "approve"}, "headers": {"If-Match": "abc"}},
            422,
            "If-Match",
        ),
    ],
)
def test_errors_are_problem_json(api, method, path, kwargs, status, phrase):
    kwargs = dict(kwargs)  # the parameters are shared by both backends' runs: never mutate them
    headers = {**api.auth(Role.admin), **kwargs.pop("headers", {})}
    response = api.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and phrase in body["detail"]


def test_a_duplicate_project_is_409(api):
    body = {"name": "St Mary LIS lab", "source_system": "x", "target_terminology": "loinc"}
    assert api.call("POST", "/projects", Role.mapper, json=body).status_code == 409


def test_translate_get_and_post(api):
    params = {
        "url": "urn:crosswalk:conceptmap:1",
        "system": "urn:crosswalk:source:st-mary-lis-local-lab-codes",
        "code": "GLU",
    }
    response = api.call("GET", "/fhir/ConceptMap/$translate", Role.viewer, params=params)
    assert response.headers["content-type"] == "application/fhir+json"
    result = Parameters.model_validate(response.json())
    values = {p.name: p for p in result.parameter}
    assert values["result"].valueBoolean is True
    parts = {p.name: p for p in values["match"].part}
    assert parts["concept"].valueCoding.code == "2345-7" and parts["relationship"].valueCode == "equivalent"

    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": "urn:crosswalk:conceptmap:1"},
            {"name": "sourceCode", "valueCode": "NA"},
        ],
    }
    missing = api.call("POST", "/fhir/ConceptMap/$translate", Role.viewer, json=body).json()
    assert Parameters.model_validate(missing).parameter[0].valueBoolean is False  # NA is not in release 1
    other_system = api.call(
        "GET", "/fhir/ConceptMap/$translate", Role.viewer, params={**params, "system": "http://elsewhere"}
    )
    assert other_system.json()["parameter"][0]["valueBoolean"] is False
    assert api.call("GET", "/fhir/ConceptMap/$translate", Role.viewer, params={"code": "GLU"}).status_code == 422


def test_logs_carry_no_source_texts_or_tokens(sqlite_service, caplog):
    caplog.set_level(logging.DEBUG)
    project = sqlite_service.ready_project()
    sqlite_service.decide(project, "GLU", action="approve")
    sqlite_service.call("GET", f"/projects/{project}/search", Role.viewer, params={"q": "Potassium serum"})
    sqlite_service.import_csv(project, b"source_code,source_text\nX,Secret patient-ish text\nX,again\n")
    assert "POST /projects/{project_id}/items/{code}/decisions 200" in caplog.text
    for secret in ("Glucose serum", "Potassium serum", "Secret patient-ish text", *sqlite_service.tokens.values()):
        assert secret not in caplog.text


def test_an_unexpected_error_is_a_500_problem_and_its_message_stays_out_of_the_logs(
    sqlite_service, caplog, monkeypatch
):
    from service import crud

    def boom(session, archived=False):
        raise RuntimeError("Secret patient-ish text in an error message")

    monkeypatch.setattr(crud, "list_projects", boom)
    caplog.set_level(logging.DEBUG)
    response = sqlite_service.call("GET", "/projects", Role.viewer)  # TestClient re-raises what reaches the server
    assert response.status_code == 500 and response.headers["content-type"] == "application/problem+json"
    assert "unexpected RuntimeError on GET /projects" in caplog.text
    assert "Secret patient-ish text" not in caplog.text and "Traceback" not in caplog.text


def test_serving_models_are_loaded_at_start_for_every_projects_terminology(sqlite_service, caplog):
    from service.store.errors import Invalid
    from service.web.app import load_serving_models

    sqlite_service.project(name="Labs")  # target loinc
    body = {"name": "Gone", "source_system": "LIS", "target_terminology": "retired-terminology"}
    assert sqlite_service.call("POST", "/projects", Role.mapper, json=body).status_code == 201
    built = []

    def factory(name):
        built.append(name)
        if name == "retired-terminology":
            raise Invalid("unknown terminology 'retired-terminology'")
        return sqlite_service.suggester

    sqlite_service.app.state.suggester_factory = factory
    assert load_serving_models(sqlite_service.app) == {"loinc": "fake-words@1"}
    assert built == ["loinc", "retired-terminology"]
    assert "not serving retired-terminology" in caplog.text
