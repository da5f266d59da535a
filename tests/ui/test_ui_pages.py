"""The review pages over HTTP (no browser): login, roles, the queue's order and filters, decisions
through the API's crud path, undo, history, releases and their downloads, CSRF and error pages."""

from __future__ import annotations

import html
import re

import pytest

from service import audit
from service.store.db import session_scope
from service.store.tables import Role
from tests.ui.conftest import browser_or_skip, csrf_of, login


def _codes_in_queue(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="[^"]*">([^<]+)</a></th>', html)


def _decide(client, project, code, choice, page_html, **extra):
    form = page_html[page_html.index('<form id="decide"') :]  # the item's form, not the undo one above it
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    data = {"csrf": csrf_of(page_html), "version": version, "choice": choice, "pos": "0", **extra}
    return client.post(f"/ui/projects/{project}/items/{code}/decide", data=data, follow_redirects=False)


def test_pages_need_a_login_and_come_back_after_it(ui_service, project):
    client = ui_service.client
    response = client.get(f"/ui/projects/{project}", follow_redirects=False)
    assert (
        response.status_code == 303 and response.headers["location"] == f"/ui/login?next=%2Fui%2Fprojects%2F{project}"
    )
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    page = client.get("/ui/login")
    bad = client.post("/ui/login", data={"token": "cw_wrong", "csrf": csrf_of(page.text), "next": "/ui/"})
    assert bad.status_code == 401 and "Unknown or revoked API token" in bad.text
    no_csrf = client.post("/ui/login", data={"token": ui_service.tokens[Role.viewer], "csrf": "forged"})
    assert no_csrf.status_code == 400 and "cw_session" not in no_csrf.headers.get("set-cookie", "")


def test_the_session_cookie_is_httponly_strict_and_ends_with_the_token(ui_service, project):
    client = login(ui_service, Role.viewer)
    cookie = next(c for c in client.cookies.jar if c.name == "cw_session")
    assert cookie.path == "/ui" and cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite").lower() == "strict"
    assert client.get("/ui/").status_code == 200
    token_id = next(t["id"] for t in ui_service.call("GET", "/tokens").json() if t["name"] == "viewer-1")
    ui_service.call("DELETE", f"/tokens/{token_id}")
    assert client.get("/ui/", follow_redirects=False).status_code == 303  # revoked: back to the login


def test_the_queue_is_ordered_by_expected_value_and_filters(ui_service, project):
    client = login(ui_service, Role.mapper)
    html = client.get(f"/ui/projects/{project}").text
    with session_scope(ui_service.engine) as session:
        from service import crud

        items = crud.list_items(session, crud.get_project(session, project), limit=100)[1]
        value = {}
        for item in items:
            top = crud.current_suggestions(session, item)
            value[item.code] = (item.frequency or 1) * (1 - (top[0].score if top else 0))
    expected = sorted(value, key=lambda code: (-value[code], code))
    assert _codes_in_queue(html) == expected
    urinalysis = _codes_in_queue(client.get(f"/ui/projects/{project}?domain=urinalysis").text)
    assert set(urinalysis) == {"UA", "NAU", "KU", "APP"}
    high = _codes_in_queue(client.get(f"/ui/projects/{project}?band=high").text)
    assert high and all(value[c] <= 0.2 * 900 for c in high)


def test_items_with_no_confident_match_carry_a_badge_and_have_their_own_filter(ui_service, project):
    client = login(ui_service, Role.viewer)
    badge = ">no confident match</span>"
    weak_page = client.get(f"/ui/projects/{project}?band=weak").text
    weak = _codes_in_queue(weak_page)
    # The fake ranker shares no word of "Unknown legacy test" or "Urinalysis dipstick" with a concept name
    assert {"XYZ", "UA"} <= set(weak) and "GLU" not in weak
    assert weak_page.count(badge) == len(weak) and 'value="weak" selected' in weak_page
    with session_scope(ui_service.engine) as session:
        from service import crud

        found = crud.get_project(session, project)
        expected = {i.code for i in crud.list_items(session, found, limit=100, confidence="weak")[1]}
    assert set(weak) == expected
    everything = client.get(f"/ui/projects/{project}").text
    assert everything.count(badge) == len(weak) < len(_codes_in_queue(everything))
    assert badge in client.get(f"/ui/projects/{project}/review?code=XYZ&status=all").text
    assert badge not in client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text


def test_a_decision_goes_through_the_audited_path_and_moves_on(ui_service, project):
    client = login(ui_service, Role.mapper)
    first = client.get(f"/ui/projects/{project}/review")
    code = re.search(r'<h1 id="item-title"><code>([^<]+)</code>', first.text).group(1)
    response = _decide(client, project, code, "pick:2951-2", first.text, relationship="source-is-narrower-than-target")
    assert response.status_code == 303
    item = ui_service.item(project, code)
    assert (item["status"], item["target_code"], item["relationship"], item["decided_by"]) == (
        "approved",
        "2951-2",
        "source-is-narrower-than-target",
        "mapper-1",
    )
    assert item["terminology_version"] == "2.77"  # the release decided against, as the API records it
    after = client.get(response.headers["location"]).text
    assert f"<strong>{code}</strong> approved" in after and 'data-key="z"' in after
    assert re.search(r'<h1 id="item-title"><code>([^<]+)</code>', after).group(1) != code
    with session_scope(ui_service.engine) as session:
        events = [e for e in audit.history(session, entity=f"item:{_item_id(session, project, code)}")]
        assert events[-1].action == "decision.approve" and events[-1].actor == "mapper-1"
        assert audit.verify(session).ok


def _item_id(session, project, code):
    from service import crud

    return crud.get_item(session, crud.get_project(session, project), code).id


def test_undo_restores_and_a_stale_page_is_refused_with_the_reason(ui_service, project):
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text
    assert _decide(client, project, "GLU", "reject", page).status_code == 303
    stale = _decide(client, project, "GLU", "approve", page)  # the page still shows the old version
    assert stale.status_code == 409 and "changed since version" in stale.text and 'role="alert"' in stale.text
    after = client.get(f"/ui/projects/{project}/review?status=all&last=GLU").text
    undo = re.search(
        r'<form method="post" action="[^"]+/items/GLU/decide" class="inline">.*?</form>', after, re.S
    ).group(0)
    version = re.search(r'name="version" value="(\d+)"', undo).group(1)
    data = {"csrf": csrf_of(after), "version": version, "choice": "revert", "pos": "0", "status": "all"}
    response = client.post(f"/ui/projects/{project}/items/GLU/decide", data=data, follow_redirects=False)
    assert response.status_code == 303
    assert ui_service.item(project, "GLU")["status"] == "suggested"
    assert "Undid the last decision on <strong>GLU</strong>" in client.get(response.headers["location"]).text


def test_a_viewer_sees_but_cannot_act(ui_service, project):
    client = login(ui_service, Role.viewer)
    page = client.get(f"/ui/projects/{project}/review").text
    assert "can see this item but not change it" in page and 'value="approve"' not in page
    response = _decide(client, project, "GLU", "approve", page)
    assert response.status_code == 403 and "role 'viewer' may not decide" in html.unescape(response.text)
    releases = client.get(f"/ui/projects/{project}/releases").text
    assert "Create release" not in releases
    refused = client.post(f"/ui/projects/{project}/releases", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403
    assert ui_service.item(project, "GLU")["status"] == "suggested"


def test_forms_need_the_csrf_value_and_this_origin(ui_service, project):
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    url = f"/ui/projects/{project}/items/GLU/decide"
    assert client.post(url, data={"csrf": "forged", "version": version, "choice": "approve"}).status_code == 403
    other_site = client.post(
        url,
        data={"csrf": csrf_of(page), "version": version, "choice": "approve"},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert ui_service.item(project, "GLU")["status"] == "suggested"


def test_history_lists_who_did_what_with_the_model_version(ui_service, project):
    ui_service.decide(project, "NA", action="flag", comment="ask the lab")
    client = login(ui_service, Role.viewer)
    html = client.get(f"/ui/projects/{project}/items/NA/history").text
    for text in ("item.import", "item.suggest", "decision.flag", "mapper-1", "fake-words@1", "ask the lab"):
        assert text in html


def test_search_offers_concepts_to_remap_to(ui_service, project):
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=XYZ&status=all&q=creatinine").text
    assert 'value="remap:2160-0"' in page
    response = _decide(client, project, "XYZ", "remap:2160-0", page, status="all")
    assert response.status_code == 303 and ui_service.item(project, "XYZ")["target_code"] == "2160-0"
    bad = _decide(client, project, "UA", "remap:9999-9", client.get(f"/ui/projects/{project}/review?code=UA").text)
    assert bad.status_code == 422 and "not a code of loinc" in html.unescape(bad.text)


def test_releases_diff_and_downloads(ui_service, project):
    ui_service.decide(project, "GLU", action="approve")
    client = login(ui_service, Role.reviewer)
    page = client.get(f"/ui/projects/{project}/releases").text
    created = client.post(
        f"/ui/projects/{project}/releases", data={"csrf": csrf_of(page), "note": "first"}, follow_redirects=False
    )
    assert created.status_code == 303 and created.headers["location"] == f"/ui/projects/{project}/releases/1"
    ui_service.decide(project, "NA", action="approve")
    ui_service.decide(project, "GLU", action="remap", target_code="2160-0")
    client.post(f"/ui/projects/{project}/releases", data={"csrf": csrf_of(page)})
    diff = client.get(f"/ui/projects/{project}/releases/2").text
    assert "1 added" in diff and "1 changed" in diff and "0 removed" in diff
    conceptmap = client.get(f"/ui/projects/{project}/releases/2/export/fhir-r4")
    assert conceptmap.status_code == 200 and "attachment" in conceptmap.headers["content-disposition"]
    assert conceptmap.json()["resourceType"] == "ConceptMap"
    assert client.get(f"/ui/projects/{project}/releases/2/export/pdf").status_code == 422


def test_omop_downloads_say_why_they_are_unavailable(ui_service, project):
    """A LOINC project without a loaded OMOP vocabulary: no OMOP/Usagi link, a visible reason, a refused download."""
    ui_service.decide(project, "GLU", action="approve")
    client = login(ui_service, Role.reviewer)
    client.post(
        f"/ui/projects/{project}/releases", data={"csrf": csrf_of(client.get(f"/ui/projects/{project}/releases").text)}
    )
    for page in (
        client.get(f"/ui/projects/{project}/releases").text,
        client.get(f"/ui/projects/{project}/releases/1").text,
    ):
        assert "/export/fhir-r4" in page and "/export/omop" not in page and "/export/usagi" not in page
        assert "Not available: OMOP source_to_concept_map" in page and "no OMOP vocabulary is loaded" in page
    refused = client.get(f"/ui/projects/{project}/releases/1/export/omop")
    assert refused.status_code == 409 and "text/html" in refused.headers["content-type"]
    assert "no OMOP vocabulary is loaded" in html.unescape(refused.text)


def test_an_empty_release_re_renders_with_the_reason(ui_service, project):
    client = login(ui_service, Role.reviewer)
    page = client.get(f"/ui/projects/{project}/releases").text
    response = client.post(f"/ui/projects/{project}/releases", data={"csrf": csrf_of(page), "note": "too early"})
    assert response.status_code == 422 and "no approved mappings to release" in response.text
    assert 'value="too early"' in response.text


def test_errors_under_ui_are_pages_and_the_api_keeps_problem_json(ui_service, project):
    client = login(ui_service, Role.viewer)
    missing = client.get("/ui/projects/999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no project '999'" in html.unescape(missing.text)
    assert ui_service.call("GET", "/projects/999").headers["content-type"] == "application/problem+json"


def test_pages_are_not_in_the_openapi_document_and_carry_a_strict_csp(ui_service, project):
    assert not [p for p in ui_service.app.openapi()["paths"] if p.startswith("/ui") or p == "/"]
    client = login(ui_service, Role.viewer)
    response = client.get(f"/ui/projects/{project}/review")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script>" not in response.text and "http://" not in response.text.replace("http://testserver", "")


def test_the_item_view_shows_context_candidates_and_their_evidence(ui_service, project):
    client = login(ui_service, Role.viewer)
    page = html.unescape(client.get(f"/ui/projects/{project}/review?code=K&status=all").text)
    assert "<dt>unit</dt><dd>mmol/L</dd>" in page and "<dt>Frequency</dt><dd>780</dd>" in page
    first = page[page.index('<li class="candidate">') : page.index("</li>", page.index('<li class="candidate">'))]
    assert "2823-3" in first and "Potassium [Moles/volume] in Serum or Plasma" in first
    assert "matched synonym “Potassium serum”" in first
    assert (
        '<span title="LG-CHEM">Chemistry</span> › <span title="LG-LYTES">Electrolytes</span> › <span>2823-3</span>'
        in first
    )
    assert "lexical" in first and "semantic" in first


def test_four_eyes_a_reviewer_confirms_what_a_mapper_proposed(ui_service):
    from tests.ui.conftest import UI_CSV

    project = ui_service.project(four_eyes=True, name="four eyes")
    ui_service.import_csv(project, UI_CSV)
    ui_service.suggest(project)
    mapper = login(ui_service, Role.mapper)
    page = mapper.get(f"/ui/projects/{project}/review?code=GLU&status=all").text
    assert _decide(mapper, project, "GLU", "approve", page, status="all").status_code == 303
    assert ui_service.item(project, "GLU")["status"] == "pending"
    assert 'value="confirm"' not in mapper.get(f"/ui/projects/{project}/review?status=pending").text

    reviewer = login(ui_service, Role.reviewer)
    pending = reviewer.get(f"/ui/projects/{project}/review?status=pending").text
    assert 'value="confirm" data-key="c"' in pending
    assert _decide(reviewer, project, "GLU", "confirm", pending, status="pending").status_code == 303
    item = ui_service.item(project, "GLU")
    assert (item["status"], item["decided_by"], item["confirmed_by"]) == ("approved", "mapper-1", "reviewer-1")


def test_every_form_control_has_a_label(ui_service, project):
    """Screen readers name each control: a <label for>, or an aria-label on buttons without text."""
    client = login(ui_service, Role.reviewer)
    ui_service.decide(project, "GLU", action="approve")
    ui_service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={})
    pages = [
        "/ui/",
        f"/ui/projects/{project}",
        f"/ui/projects/{project}/review",
        f"/ui/projects/{project}/review?code=XYZ&q=urea",
        f"/ui/projects/{project}/releases",
        f"/ui/projects/{project}/releases/1",
        f"/ui/projects/{project}/items/GLU/history",
    ]
    for path in pages:
        page = client.get(path).text
        labelled = set(re.findall(r'<label for="([^"]+)"', page))
        controls = re.findall(r'<(?:input|select)\b(?![^>]*type="hidden")[^>]*>', page)
        for control in controls:
            control_id = re.search(r'id="([^"]+)"', control)
            assert control_id and control_id.group(1) in labelled, (path, control)
        for button in re.findall(r"<button\b[^>]*>(.*?)</button>", page, re.S):
            assert re.sub(r"<[^>]+>", "", button).strip() or "aria-label" in button, (path, button)


def test_a_missing_browser_skips_the_e2e_tests_unless_ci_requires_it(monkeypatch, tmp_path):
    missing = tmp_path / "chromium"
    monkeypatch.delenv("CROSSWALK_REQUIRE_E2E", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        browser_or_skip(missing)
    monkeypatch.setenv("CROSSWALK_REQUIRE_E2E", "1")
    with pytest.raises(pytest.fail.Exception, match=f"CROSSWALK_REQUIRE_E2E=1 but no {missing}"):
        browser_or_skip(missing)


def test_without_the_target_terminology_items_still_render_and_reject_works(ui_service, project):
    from service.engine import Terminologies
    from service.store.errors import Invalid

    def unloaded(name):
        raise Invalid(f"unknown terminology {name!r}; load it with `crosswalk terminology load`")

    ui_service.app.state.suggester_factory = unloaded
    ui_service.app.state.terminologies = Terminologies(unloaded)
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=UA&status=all")
    assert page.status_code == 200 and "Chemistry ›" not in page.text  # no hierarchy without the terminology
    assert _decide(client, project, "UA", "reject", page.text, status="all").status_code == 303
    refused = _decide(
        client, project, "GLU", "approve", client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text
    )
    assert refused.status_code == 422 and "crosswalk terminology load" in refused.text
    assert (
        ui_service.item(project, "UA")["status"] == "rejected"
        and ui_service.item(project, "GLU")["status"] == "suggested"
    )


def test_undo_is_a_stack_of_my_own_decisions_read_from_the_audit_log(ui_service, project):
    ui_service.decide(project, "NA", Role.reviewer, action="reject")  # someone else's: never mine to undo
    client = login(ui_service, Role.mapper)
    for code, choice in (("GLU", "approve"), ("K", "flag"), ("HGB", "unmappable")):
        page = client.get(f"/ui/projects/{project}/review?code={code}&status=all").text
        assert _decide(client, project, code, choice, page, status="all").status_code == 303
    undone = []
    for _ in range(4):
        page = client.get(f"/ui/projects/{project}/review?status=all").text
        form = re.search(r'<form method="post" action="[^"]+/items/(\w+)/decide" class="inline">.*?</form>', page, re.S)
        if form is None:
            break
        version = re.search(r'name="version" value="(\d+)"', form.group(0)).group(1)
        data = {"csrf": csrf_of(page), "version": version, "choice": "revert", "pos": "0", "status": "all"}
        assert (
            client.post(
                f"/ui/projects/{project}/items/{form.group(1)}/decide", data=data, follow_redirects=False
            ).status_code
            == 303
        )
        undone.append(form.group(1))
    assert undone == ["HGB", "K", "GLU"]  # newest first, then nothing of mine is left to undo
    assert {c: ui_service.item(project, c)["status"] for c in ("GLU", "K", "HGB", "NA")} == {
        "GLU": "suggested",
        "K": "suggested",
        "HGB": "suggested",
        "NA": "rejected",
    }


def _luminance(colour: str) -> float:
    if len(colour) == 4:  # #fff
        colour = "#" + "".join(c * 2 for c in colour[1:])
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_text_colours_meet_wcag_aa_contrast_on_their_backgrounds():
    from service.ui.render import HERE

    css = (HERE / "static" / "ui.css").read_text()
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", css)) | {
        "white": "#ffffff",
        "header": "#14283d",
    }
    pairs = [
        ("ink", "bg"),
        ("ink", "card"),
        ("muted", "bg"),
        ("muted", "card"),
        ("accent", "card"),
        ("accent-ink", "accent"),
        ("ok", "ok-bg"),
        ("bad", "bad-bg"),
        ("warn", "warn-bg"),
        ("info", "info-bg"),
        ("white", "header"),
    ]
    for text, background in pairs:
        light, dark = sorted((_luminance(colours[text]), _luminance(colours[background])), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (text, background)


def test_a_code_with_a_slash_opens_decides_and_shows_its_history(ui_service):
    project = ui_service.project(name="slashes")
    data = b"source_code,source_text,frequency\nNA/K #2,Sodium potassium ratio serum,10\nGLU,Glucose serum,900\n"
    assert ui_service.import_csv(project, data).status_code == 200
    ui_service.suggest(project)
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review", params={"code": "NA/K #2", "status": "all"}).text
    action = re.search(r'<form id="decide" method="post" action="([^"]+)"', page).group(1)
    assert action == f"/ui/projects/{project}/items/NA/K%20%232/decide"  # "/" kept: the route takes it whole
    version = re.search(r'name="version" value="(\d+)"', page[page.index('<form id="decide"') :]).group(1)
    form = {"csrf": csrf_of(page), "version": version, "choice": "flag", "pos": "0", "status": "all"}
    assert client.post(action, data=form, follow_redirects=False).status_code == 303
    assert ui_service.item(project, "NA%2FK%20%232")["status"] == "flagged"
    history_link = re.search(r'<a href="([^"]+/history)"', page).group(1)
    history = client.get(history_link)
    assert history.status_code == 200 and "NA/K #2" in html.unescape(history.text)


def test_an_archived_project_is_hidden_read_only_and_still_readable(ui_service, project):
    assert ui_service.call("POST", f"/projects/{project}/archive", Role.admin).status_code == 200
    client = login(ui_service, Role.reviewer)
    assert f"/ui/projects/{project}" not in client.get("/ui/").text
    queue = client.get(f"/ui/projects/{project}")
    assert queue.status_code == 200 and "This project is archived: read-only" in queue.text
    before = len(ui_service.call("GET", "/audit/events", Role.admin).json())
    page = client.get(f"/ui/projects/{project}/review?pos=0")  # opening an item claims nothing
    assert page.status_code == 200
    assert len(ui_service.call("GET", "/audit/events", Role.admin).json()) == before
    refused = _decide(client, project, _codes_in_queue(queue.text)[0], "approve", page.text)
    assert refused.status_code == 409 and "is archived and read-only" in html.unescape(refused.text)


def test_the_counts_line_separates_only_the_statuses_it_shows(ui_service, project):
    page = login(ui_service, Role.reviewer).get(f"/ui/projects/{project}").text
    counts = re.sub(r"<[^>]+>", "", re.search(r'<p class="counts"[^>]*>(.*?)</p>', page, re.S).group(1)).strip()
    assert counts == "15 suggested"
