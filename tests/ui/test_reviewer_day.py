"""What a reviewer's day must never let slip: lists show decisions, two reviewers never collide,
comments are a thread, rejections stay visible, four-eyes has no gaps."""

from __future__ import annotations

import re

from service.store.tables import Role
from tests.ui.conftest import UI_CSV, csrf_of, login


def _page(client, project: int, query: str = "") -> str:
    response = client.get(f"/ui/projects/{project}/review?{query}")
    assert response.status_code == 200, response.text
    return response.text


def _shown_code(html: str) -> str:
    return re.search(r'<h1 id="item-title"><code>([^<]+)</code>', html).group(1)


def _post(client, project: int, code: str, html: str, choice: str, **extra):
    form = html[html.index('<form id="decide"') :]
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    data = {"csrf": csrf_of(html), "version": version, "choice": choice, "pos": "0", **extra}
    return client.post(f"/ui/projects/{project}/items/{code}/decide", data=data, follow_redirects=False)


def _row(queue_html: str, code: str) -> str:
    start = queue_html.index(f">{code}</a></th>")
    return queue_html[start : queue_html.index("</tr>", start)]


def _decision_cell(queue_html: str, code: str) -> str:
    row = _row(queue_html, code)
    return row[row.index('<td class="decision">') : row.index("</td>", row.index('<td class="decision">'))]


# -- lists show the decision, not the suggestion ------------------------------------------------------
def test_the_queue_shows_what_was_decided_apart_from_the_models_suggestion(ui_service, project):
    ui_service.decide(project, "GLU", action="remap", target_code="2160-0")  # not the top suggestion
    queue = login(ui_service, Role.viewer).get(f"/ui/projects/{project}?status=all").text
    cell = _decision_cell(queue, "GLU")
    assert "2160-0" in cell and "2345-7" not in cell  # the decision, not the suggestion
    assert "2345-7" in _row(queue, "GLU")  # the suggestion still shown, in its own column


def test_a_proposed_unmappable_shows_no_concept_in_the_four_eyes_list(ui_service):
    project = ui_service.project(four_eyes=True, name="four eyes")
    ui_service.import_csv(project, UI_CSV)
    ui_service.suggest(project)
    assert ui_service.decide(project, "XYZ", action="unmappable").status_code == 200
    queue = login(ui_service, Role.reviewer).get(f"/ui/projects/{project}?status=pending").text
    cell = _decision_cell(queue, "XYZ")
    assert "unmappable" in cell and "<code>" not in cell


# -- two reviewers never collide ------------------------------------------------------------------------
def test_two_reviewers_starting_at_once_get_different_items(ui_service, project):
    ben = ui_service.make_token(Role.mapper, "ben")
    first = _shown_code(_page(login(ui_service, Role.mapper), project, "pos=0"))
    second = _shown_code(_page(login(ui_service, ben), project, "pos=0"))
    assert first != second


def test_replacing_a_colleagues_decision_needs_an_explicit_override(ui_service, project):
    ben = login(ui_service, ui_service.make_token(Role.mapper, "ben"))
    stale = _page(ben, project, "code=GLU&status=all")  # ben opened GLU before mapper-1 decided it
    assert ui_service.decide(project, "GLU", action="approve").status_code == 200
    fresh = _page(ben, project, "code=GLU&status=all")
    refused = _post(ben, project, "GLU", fresh, "pick:2160-0")
    assert refused.status_code == 409 and "override" in refused.text and 'name="override" value="1"' in refused.text
    assert ui_service.item(project, "GLU")["target_code"] == "2345-7"  # nothing replaced
    assert _post(ben, project, "GLU", stale, "pick:2160-0").status_code == 409  # the stale page neither
    replaced = _post(ben, project, "GLU", fresh, "pick:2160-0", override="1")
    assert replaced.status_code == 303
    history = ui_service.call("GET", f"/projects/{project}/items/GLU/history", Role.viewer).json()
    assert history[-1]["action"] == "decision.override" and history[-1]["actor"] == "ben"
    api = ui_service.decide(project, "GLU", action="reject")  # the API asks the same
    assert api.status_code == 409 and "override" in api.json()["detail"]


# -- comments are a thread ------------------------------------------------------------------------------
def test_a_later_decision_never_wipes_a_comment(ui_service, project):
    client = login(ui_service, Role.mapper)
    page = _page(client, project, "code=NA&status=all")
    assert _post(client, project, "NA", page, "flag", comment="check the unit with the lab").status_code == 303
    page = _page(client, project, "code=NA&status=all")
    assert _post(client, project, "NA", page, "approve").status_code == 303  # no comment this time
    assert (
        _post(
            client, project, "NA", _page(client, project, "code=NA&status=all"), "comment", comment="lab said mmol/L"
        ).status_code
        == 303
    )
    item = ui_service.item(project, "NA")
    assert [(c["author"], c["text"]) for c in item["comments"]] == [
        ("mapper-1", "check the unit with the lab"),
        ("mapper-1", "lab said mmol/L"),
    ]
    assert item["status"] == "approved"  # a comment alone decides nothing
    shown = _page(client, project, "code=NA&status=all")
    assert "check the unit with the lab" in shown and "lab said mmol/L" in shown
    added = ui_service.call("POST", f"/projects/{project}/items/NA/comments", Role.mapper, json={"text": "ok"})
    assert added.status_code == 200 and added.json()["comments"][-1]["text"] == "ok"


# -- rejections stay visible ------------------------------------------------------------------------------
def test_a_rejected_item_stays_in_the_queue_with_a_count_until_remapped(ui_service, project):
    assert ui_service.decide(project, "XYZ", action="reject").status_code == 200
    client = login(ui_service, Role.mapper)
    queue = client.get(f"/ui/projects/{project}").text  # the default queue
    assert ">XYZ</a></th>" in queue and "1 rejected" in queue
    assert ui_service.decide(project, "XYZ", action="unmappable").status_code == 200
    assert ">XYZ</a></th>" not in client.get(f"/ui/projects/{project}").text


# -- four-eyes without gaps -------------------------------------------------------------------------------
def _four_eyes(ui_service) -> int:
    project = ui_service.project(four_eyes=True, name="four eyes")
    ui_service.import_csv(project, UI_CSV)
    ui_service.suggest(project)
    return project


def test_pending_items_are_in_the_default_queue_for_others_with_a_key_and_no_confirm_for_the_proposer(ui_service):
    project = _four_eyes(ui_service)
    assert ui_service.decide(project, "GLU", action="approve").status_code == 200  # mapper-1 proposes
    reviewer_queue = login(ui_service, Role.reviewer).get(f"/ui/projects/{project}").text
    assert ">GLU</a></th>" in reviewer_queue and 'data-key="w"' in reviewer_queue
    proposer = login(ui_service, Role.mapper)
    assert ">GLU</a></th>" not in proposer.get(f"/ui/projects/{project}").text  # mine waits for someone else
    assert 'value="confirm"' not in _page(proposer, project, "code=GLU&status=all")


def test_a_different_pick_by_the_confirmer_is_a_counter_proposal_for_a_third_reviewer(ui_service):
    project = _four_eyes(ui_service)
    assert ui_service.decide(project, "GLU", action="approve").status_code == 200  # mapper-1: 2345-7
    reviewer = login(ui_service, Role.reviewer)
    page = _page(reviewer, project, "code=GLU&status=all")
    assert _post(reviewer, project, "GLU", page, "pick:2160-0").status_code == 303
    item = ui_service.item(project, "GLU")
    assert (item["status"], item["target_code"], item["decided_by"]) == ("pending", "2160-0", "reviewer-1")
    assert item["disagreement"]["decided_by"] == "mapper-1"
    assert "Four-eyes disagreement" in _page(reviewer, project, "code=GLU&status=all")
    for role in (Role.mapper, Role.reviewer):  # neither side of the disagreement confirms it
        version = ui_service.item(project, "GLU")["version"]
        body = {"version": version}
        refused = ui_service.call("POST", f"/projects/{project}/items/GLU/confirmations", role, json=body)
        assert refused.status_code == 403
    third = ui_service.make_token(Role.reviewer, "carla")
    version = ui_service.item(project, "GLU")["version"]
    confirmed = ui_service.call(
        "POST", f"/projects/{project}/items/GLU/confirmations", third, json={"version": version}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["confirmed_by"]) == ("approved", "carla")
