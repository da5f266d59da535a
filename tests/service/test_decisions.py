"""Decisions: each action, versions (If-Match, 409, 428), four-eyes, and two reviewers racing."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from service import audit
from service.store.db import session_scope
from service.store.tables import Role


@pytest.fixture
def project(sqlite_service):
    return sqlite_service.ready_project()


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    return body


def test_approve_takes_the_top_suggestion(sqlite_service, project):
    response = sqlite_service.decide(project, "GLU", action="approve", comment="checked units")
    assert response.status_code == 200, response.text
    item = response.json()
    assert (item["status"], item["target_code"], item["relationship"]) == ("approved", "2345-7", "equivalent")
    assert item["decided_by"] == "mapper-1" and item["comment"] == "checked units"
    assert response.headers["ETag"] == f'"{item["version"]}"'


@pytest.mark.parametrize(
    ("body", "status", "target", "relationship"),
    [
        ({"action": "reject"}, "rejected", None, None),
        ({"action": "flag", "comment": "ask the lab"}, "flagged", None, None),
        ({"action": "unmappable"}, "unmappable", None, "not-related-to"),
        (
            {"action": "remap", "target_code": "4548-4", "relationship": "source-is-narrower-than-target"},
            "approved",
            "4548-4",
            "source-is-narrower-than-target",
        ),
    ],
)
def test_each_action(sqlite_service, project, body, status, target, relationship):
    item = sqlite_service.decide(project, "UA", **body).json()
    assert (item["status"], item["target_code"], item["relationship"]) == (status, target, relationship)


def test_remap_to_a_code_outside_the_terminology_is_refused_and_nothing_changes(sqlite_service, project):
    before = sqlite_service.item(project, "GLU")
    body = _problem(sqlite_service.decide(project, "GLU", action="remap", target_code="9999-9"), 422)
    assert "'9999-9' is not a code of loinc" in body["detail"]
    assert sqlite_service.item(project, "GLU") == before


def test_search_finds_the_concept_to_remap_to(sqlite_service, project):
    found = sqlite_service.call(
        "GET", f"/projects/{project}/search", Role.viewer, params={"q": "creatinine serum"}
    ).json()
    assert found[0]["code"] == "2160-0"
    assert (
        sqlite_service.call("GET", f"/projects/{project}/search", Role.viewer, params={"q": "2823-3"}).json()[0]["code"]
        == "2823-3"
    )


def test_a_stale_version_gets_409_with_the_current_state(sqlite_service, project):
    version = sqlite_service.item(project, "NA")["version"]
    assert sqlite_service.decide(project, "NA", version=version, action="approve").status_code == 200
    body = _problem(sqlite_service.decide(project, "NA", Role.reviewer, version=version, action="reject"), 409)
    assert body["current"]["status"] == "approved" and body["current"]["version"] == version + 1
    assert sqlite_service.item(project, "NA")["status"] == "approved"


def test_a_decision_without_a_version_gets_428(sqlite_service, project):
    response = sqlite_service.call(
        "POST", f"/projects/{project}/items/NA/decisions", Role.mapper, json={"action": "reject"}
    )
    assert "If-Match" in _problem(response, 428)["detail"]
    version = sqlite_service.item(project, "NA")["version"]
    body_version = {"action": "reject", "version": version}
    ok = sqlite_service.call("POST", f"/projects/{project}/items/NA/decisions", Role.mapper, json=body_version)
    assert ok.status_code == 200


def test_unknown_project_item_and_action_are_4xx_problems(sqlite_service, project):
    assert "no project" in _problem(sqlite_service.decide(999, "GLU", version=1, action="approve"), 404)["detail"]
    assert (
        "no source code 'NOPE'"
        in _problem(sqlite_service.decide(project, "NOPE", version=1, action="approve"), 404)["detail"]
    )
    assert _problem(sqlite_service.decide(project, "GLU", action="destroy"), 422)["errors"]


def test_four_eyes_needs_a_second_different_reviewer(sqlite_service):
    service = sqlite_service
    project = service.ready_project(four_eyes=True)
    pending = service.decide(project, "GLU", action="approve").json()
    assert (pending["status"], pending["proposed_status"]) == ("pending", "approved")

    def confirm(role, version=pending["version"]):
        url = f"/projects/{project}/items/GLU/confirmations"
        return service.call("POST", url, role, json={}, headers={"If-Match": f'"{version}"'})

    assert confirm(Role.mapper).status_code == 403  # mappers may not confirm at all
    own = service.make_token(Role.reviewer, "mapper-1")  # the proposer, now holding a reviewer token
    assert "different reviewer" in _problem(confirm(own), 403)["detail"]
    confirmed = confirm(Role.reviewer)
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["confirmed_by"]) == ("approved", "reviewer-1")
    assert "not pending" in _problem(confirm(Role.admin, confirmed.json()["version"]), 409)["detail"]


def test_release_needs_approved_mappings(sqlite_service, project):
    body = _problem(sqlite_service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}), 422)
    assert "no approved mappings" in body["detail"]


def race(service, project: int, code: str, rounds: int = 3) -> None:
    """Two reviewers decide the same item version at once, `rounds` times: exactly one wins each time."""
    clients = {role: TestClient(service.app) for role in (Role.mapper, Role.reviewer)}
    for _ in range(rounds):
        version = service.item(project, code)["version"]
        barrier, results = threading.Barrier(2), {}

        def decide(role, action, barrier=barrier, version=version, results=results):
            barrier.wait()
            url = f"/projects/{project}/items/{code}/decisions"
            headers = {**service.auth(role), "If-Match": f'"{version}"'}
            results[role] = clients[role].post(url, json={"action": action}, headers=headers)

        threads = [threading.Thread(target=decide, args=a) for a in ((Role.mapper, "approve"), (Role.reviewer, "flag"))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 409], [r.text for r in results.values()]
        winner = next(role for role, r in results.items() if r.status_code == 200)
        item = service.item(project, code)
        assert item["version"] == version + 1 and item["decided_by"] == f"{winner.value}-1"
    with session_scope(service.engine) as session:
        decisions = [e for e in audit.history(session) if e.action.startswith("decision.")]
        assert len(decisions) == rounds
        assert audit.verify(session).ok


def test_two_reviewers_racing_no_lost_update(service):
    race(service, service.ready_project(), "K")
