"""Every way an item gets decided runs `service.decisions.apply`, and its audit events share one shape."""

from __future__ import annotations

import json

from service import decisions
from service.store.tables import Role
from tests.ui.conftest import csrf_of, login


def _ui_decide(service, project: int, code: str, choice: str) -> None:
    client = login(service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code={code}&status=all").text
    form = page[page.index('<form id="decide"') :]
    version = form.split('name="version" value="', 1)[1].split('"', 1)[0]
    data = {"csrf": csrf_of(page), "version": version, "choice": choice, "pos": "0"}
    response = client.post(f"/ui/projects/{project}/items/{code}/decide", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text


def _history(service, project: int, code: str) -> list[dict]:
    return service.call("GET", f"/projects/{project}/items/{code}/history", Role.viewer).json()


def test_api_ui_dual_and_reuse_decide_through_one_function_with_one_event_shape(ui_service, project, monkeypatch):
    applied: list[str] = []
    real_apply = decisions.apply

    def spy(session, item, state, actor, action, **kwargs):
        applied.append(action)
        return real_apply(session, item, state, actor, action, **kwargs)

    monkeypatch.setattr(decisions, "apply", spy)
    service = ui_service

    assert service.decide(project, "GLU", action="approve").status_code == 200  # the API
    _ui_decide(service, project, "NA", "approve")  # the UI's form
    ben = service.make_token(Role.mapper, "ben")  # dual mapping: two mappers agree
    assigned = service.call("POST", f"/projects/{project}/dual", Role.reviewer, json={"mappers": ["mapper-1", "ben"]})
    assert assigned.status_code == 200
    dual_code = next(d["source_code"] for d in assigned.json() if d["source_code"] == "K")
    for who in (Role.mapper, ben):
        chosen = service.call("POST", f"/projects/{project}/dual/{dual_code}/choices", who, json={"action": "approve"})
        assert chosen.status_code == 200, chosen.text
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    second = service.project(name="site 2")  # reuse: site 2 takes site 1's released approval
    assert service.import_csv(second).status_code == 200
    service.suggest(second)
    body = {"from_project": project, "from_code": "GLU", "version": service.item(second, "GLU")["version"]}
    assert service.call("POST", f"/projects/{second}/items/GLU/reuse", Role.mapper, json=body).status_code == 200

    assert applied == ["decision.approve", "decision.approve", "decision.dual_agree", "decision.reuse"]
    events = [
        _history(service, project, "GLU")[-1],
        _history(service, project, "NA")[-1],
        _history(service, project, dual_code)[-1],
        _history(service, second, "GLU")[-1],
    ]
    assert [e["action"] for e in events] == applied
    afters = [e["after"] if isinstance(e["after"], dict) else json.loads(e["after"]) for e in events]
    assert len({frozenset(after) for after in afters}) == 1  # the same fields, whichever path decided
    assert set(decisions.DECISION_FIELDS) <= set(afters[0])
    assert [a["status"] for a in afters] == ["approved"] * 4
    assert all(e["model_version"] for e in events)  # every path records the model behind the suggestions
