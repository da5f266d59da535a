"""Deciding safely without a browser: Enter never decides, concept search is text search first (the API's
and the page's), a deprecated target asks again, and each candidate shows what it is and why it ranks there."""

from __future__ import annotations

import html
import re

from service.store.tables import Role
from tests.ui.conftest import csrf_of, login


def _search(service, project, q, **params):
    response = service.call("GET", f"/projects/{project}/search", Role.viewer, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response


def _decide_form(page_html: str) -> str:
    start = page_html.index('<form id="decide"')
    return page_html[start : page_html.index("</form>", start)]


def _post(client, project, code, page_html, **data):
    version = re.search(r'name="version" value="(\d+)"', _decide_form(page_html)).group(1)
    form = {"csrf": csrf_of(page_html), "version": version, "pos": "0", "status": "all", **data}
    return client.post(f"/ui/projects/{project}/items/{code}/decide", data=form, follow_redirects=False)


def test_the_decide_forms_default_button_is_disabled_and_a_choiceless_post_decides_nothing(ui_service, project):
    """Enter in a text box submits with the form's first submit button: it must be one that cannot decide."""
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text
    first_button = re.search(r"<button\b[^>]*>", _decide_form(page)).group(0)
    assert "disabled" in first_button and "name=" not in first_button
    before = ui_service.item(project, "GLU")
    refused = _post(client, project, "GLU", page, comment="a note, then Enter")
    assert refused.status_code == 422 and "no decision was chosen" in html.unescape(refused.text)
    assert ui_service.item(project, "GLU") == before


def test_search_finds_words_and_prefixes_before_the_models_ranking(ui_service, project):
    found = _search(ui_service, project, "glucometer").json()
    assert (found[0]["code"], found[0]["match"]) == ("41653-7", "text")
    assert [c["code"] for c in _search(ui_service, project, "gluco capil").json() if c["match"] == "text"] == [
        "41653-7"
    ]
    exact = _search(ui_service, project, "2160-0").json()[0]
    assert (exact["code"], exact["match"]) == ("2160-0", "code")
    nonsense = _search(ui_service, project, "xqzv").json()
    assert nonsense and {c["match"] for c in nonsense} == {"ranked"}  # no text hit; the model's guesses are labelled
    assert all(c["score"] is not None for c in nonsense)


def test_search_hides_deprecated_concepts_says_so_and_shows_them_when_asked(ui_service, project):
    plain = _search(ui_service, project, "glucose")
    codes = [c["code"] for c in plain.json() if c["match"] == "text"]
    assert "2339-0" not in codes and plain.headers["X-Hidden-Inactive"] == "1"
    assert codes[0] == "2345-7"  # every word in the display, shortest name first
    shown = _search(ui_service, project, "glucose", include_inactive="true").json()
    deprecated = next(c for c in shown if c["code"] == "2339-0")
    assert (deprecated["match"], deprecated["active"], deprecated["status"], deprecated["warning"]) == (
        "text",
        False,
        "DEPRECATED",
        "DEPRECATED",
    )
    by_status = _search(ui_service, project, "glucose", status="DEPRECATED").json()
    assert [c["code"] for c in by_status if c["match"] == "text"] == ["2339-0"]


def test_search_filters_by_class_system_and_scale(ui_service, project):
    def text_codes(**filters):
        return [c["code"] for c in _search(ui_service, project, "in", **filters).json() if c["match"] == "text"]

    assert set(text_codes(system="BldC")) == {"41653-7"}
    assert set(text_codes(**{"class": "UA"})) == set()  # "Appearance of Urine" has no word "in..."
    assert "5767-9" in [
        c["code"] for c in _search(ui_service, project, "urine", **{"class": "UA"}).json() if c["match"] == "text"
    ]
    assert text_codes(scale="Nom") == [] and "2345-7" in text_codes(scale="Qn")
    attributes = _search(ui_service, project, "glucometer").json()[0]["attributes"]
    assert (attributes["class"], attributes["system"], attributes["scale"], attributes["method"]) == (
        "CHEM",
        "BldC",
        "Qn",
        "Glucometer",
    )


def test_the_search_page_separates_text_hits_from_ranked_ones_and_focuses_only_a_text_hit(ui_service, project):
    client = login(ui_service, Role.mapper)
    base = f"/ui/projects/{project}/review?code=XYZ&status=all"
    nonsense = html.unescape(client.get(f"{base}&q=xqzv").text)
    assert "No concept found with the words “xqzv”" in nonsense
    assert "Not text matches: the model's nearest concepts" in nonsense
    assert "autofocus" not in nonsense  # a weak guess is never one Enter away
    glucometer = client.get(f"{base}&q=glucometer").text
    assert re.search(r'value="remap:41653-7" autofocus', glucometer)
    glucose = html.unescape(client.get(f"{base}&q=glucose").text)
    assert "1 inactive or deprecated concept matching “glucose” is hidden" in glucose and "s_inactive=1" in glucose
    assert (
        'id="s_class"' in glucose
        and 'id="s_system"' in glucose
        and 'id="s_scale"' in glucose
        and 'id="s_status"' in glucose
    )
    shown = client.get(f"{base}&q=glucose&s_inactive=1").text
    assert 'value="remap:2339-0"' in shown and not re.search(r'value="remap:2339-0"[^>]*autofocus', shown)
    filtered = client.get(f"{base}&q=glucose&s_system=BldC").text
    assert 'value="remap:41653-7"' in filtered and 'value="remap:2345-7" ' not in filtered.split('id="ranked-title"')[0]


def test_remapping_to_a_deprecated_concept_asks_again_before_it_is_decided(ui_service, project):
    client = login(ui_service, Role.mapper)
    page = client.get(f"/ui/projects/{project}/review?code=XYZ&status=all&q=glucose&s_inactive=1").text
    before = ui_service.item(project, "XYZ")
    asked = {"choice": "remap:2339-0", "comment": "old lab data", "relationship": "related-to"}
    warned = _post(client, project, "XYZ", page, **asked)
    text = re.sub(r"<[^>]+>", "", html.unescape(warned.text))
    assert warned.status_code == 409 and "is DEPRECATED in loinc" in text and "Map to 2339-0 anyway" in text
    assert ui_service.item(project, "XYZ") == before
    assert re.search(r'<option value="related-to" selected>', warned.text)  # the choice made before the warning stays
    kept = re.search(r'name="kept_comment" value="([^"]*)"', warned.text).group(1)
    again = {"choice": "remap:2339-0", "second_look": "2339-0", "kept_comment": kept, "relationship": "related-to"}
    confirmed = _post(client, project, "XYZ", warned.text, **again)
    item = ui_service.item(project, "XYZ")
    assert confirmed.status_code == 303
    assert (item["target_code"], item["comment"], item["relationship"]) == ("2339-0", "old lab data", "related-to")


def test_each_candidate_shows_its_loinc_axes_the_unit_check_and_why_it_ranks_there(ui_service, project):
    ui_service.import_csv(
        project, b"source_code,source_text,frequency,unit,specimen\nWBC,Glucose count blood,40,10*3/uL,blood\n"
    )
    ui_service.suggest(project)
    client = login(ui_service, Role.viewer)
    page = html.unescape(client.get(f"/ui/projects/{project}/review?code=WBC&status=all").text)
    candidates = page[page.index('<ol class="candidates"') : page.index("</ol>", page.index('<ol class="candidates"'))]
    first = candidates[: candidates.index("</li>")]
    for label, value in (
        ("Component", "Glucose"),
        ("Property", "MCnc"),
        ("Time", "Pt"),
        ("System", "BldC"),
        ("Scale", "Qn"),
        ("Method", "Glucometer"),
        ("Example units", "mg/dL"),
        ("Class", "CHEM"),
        ("Status", "ACTIVE"),
    ):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in first, label
    assert "unit mismatch: source unit 10*3/uL measures NCnc, the candidate is MCnc" in first
    assert "source specimen blood agrees with system BldC" in first
    assert "Why here: words matched: glucose, blood; source words it lacks: count" in first
    assert "ranked first" in first and "ranked 2:" in candidates
    meaning = page[page.index('<p class="score-meaning">') :].split("</p>")[0]
    assert "calibrated probability that this is the right concept" in meaning  # shown, not only to screen readers
    agree = html.unescape(client.get(f"/ui/projects/{project}/review?code=GLU&status=all").text)
    assert "source unit mg/dL is one of the candidate's example units" in agree


def test_the_loinc_loaders_attributes_give_the_checks_and_the_search_filters():
    """On the LOINC sample (a real Loinc.csv slice): units, status and class come through the loader."""
    from pathlib import Path

    from models.items import Suggestion
    from models.loaders import loinc
    from service.concept_search import TextIndex, needs_second_look
    from service.ui.evidence import explain

    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "terminologies" / "loinc"
    terminology = loinc.load(sample)
    suggestions = [
        Suggestion("2345-7", "Glucose [Mass/volume] in Serum or Plasma", 0.41, 1, {"lexical": 0.2, "semantic": 0.5}),
        Suggestion("6690-2", "Leukocytes [#/volume] in Blood by Automated count", 0.39, 2, {}),
    ]
    glucose, leukocytes = explain("WBC count", {"unit": "10*3/uL", "specimen": "whole blood"}, suggestions, terminology)
    assert ("Example units", "mg/dL") in glucose.facts and ("Status", "ACTIVE") in glucose.facts
    assert [(c.what, c.agrees) for c in glucose.checks] == [("unit", False), ("specimen", False)]
    assert [(c.what, c.agrees) for c in leukocytes.checks] == [("unit", True), ("specimen", True)]
    assert (
        "words matched: wbc, count" in leukocytes.why
    )  # "WBC" is one of its related names and "ranked 2: 0.02 below candidate 1" in leukocytes.why

    index = TextIndex(terminology)
    assert {"class", "system", "scale", "status"} <= set(index.facets)
    hidden = index.find("glucometer")
    assert (hidden.hits, hidden.hidden_inactive) == ([], 1)  # 41653-7 is DISCOURAGED in this release
    shown = index.find("glucometer", include_inactive=True).hits
    concept = terminology.concepts[shown[0].position]
    assert (concept.code, needs_second_look(concept)) == ("41653-7", "DISCOURAGED")
