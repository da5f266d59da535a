"""Undo is a new audited decision (crud.revert, POST .../reverts), never a deletion."""

from __future__ import annotations

from service import audit
from service.store.db import session_scope
from service.store.tables import Role


def _revert(service, project, code, version, role=Role.mapper):
    url = f"/projects/{project}/items/{code}/reverts"
    return service.call("POST", url, role, json={}, headers={"If-Match": f'"{version}"'})


def test_revert_restores_the_state_before_the_latest_decision(ui_service, project):
    before = ui_service.item(project, "GLU")
    approved = ui_service.decide(project, "GLU", action="approve").json()
    assert approved["status"] == "approved"
    response = _revert(ui_service, project, "GLU", approved["version"])
    assert response.status_code == 200, response.text
    undone = response.json()
    assert undone["version"] == approved["version"] + 1
    keep = ("status", "target_code", "target_display", "relationship", "decided_by", "decided_at", "comment")
    assert {k: undone[k] for k in keep} == {k: before[k] for k in keep}
    with session_scope(ui_service.engine) as session:
        actions = [e.action for e in audit.history(session, project_id=project) if e.entity.startswith("item:")]
        assert actions[-2:] == ["decision.approve", "decision.revert"]
        assert audit.verify(session).ok


def test_revert_of_a_second_decision_goes_back_one_step(ui_service, project):
    ui_service.decide(project, "NA", action="reject")
    flagged = ui_service.decide(project, "NA", action="flag", comment="ask the lab").json()
    undone = _revert(ui_service, project, "NA", flagged["version"]).json()
    assert (undone["status"], undone["comment"]) == ("rejected", None)


def test_revert_needs_the_current_version_and_a_decision(ui_service, project):
    item = ui_service.item(project, "K")
    assert _revert(ui_service, project, "K", item["version"]).status_code == 409  # nothing decided yet
    decided = ui_service.decide(project, "K", action="approve").json()
    stale = _revert(ui_service, project, "K", decided["version"] - 1)
    assert stale.status_code == 409 and "changed since" in stale.json()["detail"]
    assert _revert(ui_service, project, "K", decided["version"], Role.viewer).status_code == 403
    assert ui_service.item(project, "K")["status"] == "approved"


def test_revert_also_restores_the_terminology_release_decided_against(ui_service, project):
    decided = ui_service.decide(project, "HGB", action="approve").json()
    assert decided["terminology_version"] == "2.77"
    undone = _revert(ui_service, project, "HGB", decided["version"]).json()
    assert undone["terminology_version"] is None and undone["status"] == "suggested"
