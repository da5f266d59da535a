"""Source-code imports (crosswalk CSV, Usagi CSV), re-imports, suggestions, and bad uploads."""

from __future__ import annotations

import pytest

from service.api import problems
from service.store.tables import Role
from tests.service.conftest import LAB_CSV

USAGI_CSV = b"""sourceCode,sourceName,sourceFrequency,sourceAutoAssignedConceptIds,ADD_INFO:specimen,matchScore,mappingStatus,equivalence,statusSetBy,statusSetOn,conceptId,conceptName,domainId,mappingType,comment,createdBy,createdOn,assignedReviewer
GLU,Glucose serum,900,,serum,0.91,APPROVED,EQUAL,jo,0,3004501,Glucose [Mass/volume] in Serum or Plasma,Measurement,MAPS_TO,,jo,0,
CREAT,Creatinine serum,-1,,serum,0,UNCHECKED,UNREVIEWED,,0,0,,,MAPS_TO,,,0,
"""


def _items(service, project) -> dict[str, dict]:
    page = service.call("GET", f"/projects/{project}/items", Role.viewer).json()
    return {i["code"]: i for i in page["items"]}


def test_csv_import_keeps_frequency_and_context(sqlite_service):
    project = sqlite_service.project()
    response = sqlite_service.import_csv(project)
    assert response.json() == {"created": 5, "updated": 0, "unchanged": 0, "total": 5}
    items = _items(sqlite_service, project)
    assert items["GLU"]["frequency"] == 900 and items["GLU"]["context"] == {"unit": "mg/dL"}
    assert items["UA"]["context"] == {} and items["GLU"]["status"] == "new"
    assert list(items)[:2] == ["GLU", "NA"]  # most frequent first


def test_reimport_updates_texts_and_frequencies_but_keeps_decisions(sqlite_service):
    project = sqlite_service.ready_project()
    assert sqlite_service.decide(project, "GLU", action="approve").status_code == 200
    changed = LAB_CSV.replace(b"GLU,Glucose serum,900", b"GLU,Glucose serum/plasma,950").replace(
        b"K,Potassium serum,780", b"K,Potassium serum,781"
    )
    response = sqlite_service.import_csv(project, changed + b"CREAT,Creatinine serum,300,mg/dL\n")
    assert response.json() == {"created": 1, "updated": 2, "unchanged": 3, "total": 6}
    glu = sqlite_service.item(project, "GLU")
    assert (glu["text"], glu["frequency"]) == ("Glucose serum/plasma", 950)
    assert (glu["status"], glu["target_code"], glu["decided_by"]) == ("approved", "2345-7", "mapper-1")


def test_usagi_import(sqlite_service):
    project = sqlite_service.project()
    assert sqlite_service.import_csv(project, USAGI_CSV, fmt="usagi").json()["created"] == 2
    items = _items(sqlite_service, project)
    assert items["GLU"]["context"] == {
        "specimen": "serum",
        "usagi_conceptId": "3004501",
        "usagi_conceptName": "Glucose [Mass/volume] in Serum or Plasma",
        "usagi_mappingStatus": "APPROVED",
        "usagi_equivalence": "EQUAL",
    }
    assert items["CREAT"]["frequency"] is None  # Usagi's -1: unknown


def test_suggestions_are_stored_with_scores_evidence_and_model_version(sqlite_service):
    project = sqlite_service.ready_project()
    glu = sqlite_service.item(project, "GLU")
    assert glu["status"] == "suggested" and glu["model_version"] == "fake-words@1"
    assert [s["rank"] for s in glu["suggestions"]] == [1, 2, 3]
    top = glu["suggestions"][0]
    assert top["code"] == "2345-7" and 0 < top["score"] <= 1
    assert set(top["evidence"]) == {"lexical", "semantic", "matched_text"}
    again = sqlite_service.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"only_new": True}).json()
    assert again["items"] == 0 and sqlite_service.suggester.calls == 1


def test_items_with_no_confident_match_are_marked_and_listed_first_by_the_filter(service):
    project = service.project()
    service.import_csv(project)
    assert {i["confidence"] for i in _items(service, project).values()} == {None}  # nothing suggested yet
    assert service.call("GET", f"/projects/{project}/items?confidence=weak", Role.viewer).json()["total"] == 0
    service.suggest(project)
    items = _items(service, project)
    # "Urinalysis dipstick" shares no word with any concept: its best candidate scores 0
    assert items["UA"]["confidence"] == "weak" and items["UA"]["suggestions"][0]["score"] < 0.5
    assert {c for c, i in items.items() if i["confidence"] == "confident"} == {"GLU", "HBA1C", "NA", "K"}
    weak = service.call("GET", f"/projects/{project}/items?confidence=weak", Role.viewer).json()
    assert weak["total"] == 1 and [i["code"] for i in weak["items"]] == ["UA"]
    confident = service.call("GET", f"/projects/{project}/items?confidence=confident", Role.viewer).json()
    assert confident["total"] == 4 and "UA" not in {i["code"] for i in confident["items"]}
    assert service.item(project, "UA")["confidence"] == "weak"
    bad = service.call("GET", f"/projects/{project}/items?confidence=shaky", Role.viewer)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"code,text\nA,b\n", "missing column(s) source_code, source_text"),
        (b"source_code,source_text\nA,\n", "line 2: source_text is empty"),
        (b"source_code,source_text\nA,x\nA,y\n", "line 3: source code 'A' appears twice"),
        (b"source_code,source_text,frequency\nA,x,many\n", "line 2: frequency 'many' is not a number"),
        (b"source_code,source_text\nA,x,extra\n", "line 2: the number of fields differs"),
        (b"source_code,source_text\n", "a header but no rows"),
        (b"source_code,source_text\nA,caf\xe9\n", "not valid UTF-8"),
    ],
)
def test_bad_files_are_422_and_import_nothing(sqlite_service, data, message):
    project = sqlite_service.project()
    response = sqlite_service.import_csv(project, data)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]
    assert _items(sqlite_service, project) == {}


def test_oversized_upload_is_413_and_imports_nothing(sqlite_service, monkeypatch):
    project = sqlite_service.project()
    body = b"source_code,source_text\n" + b"A,x\n" * (problems.MAX_BODY_BYTES // 4 + 10)
    response = sqlite_service.import_csv(project, body)
    assert response.status_code == 413, response.text[:200]
    assert response.headers["content-type"] == "application/problem+json"
    assert "20 MB" in response.json()["detail"]
    assert _items(sqlite_service, project) == {}


def test_missing_file_and_bad_format_are_422(sqlite_service):
    project = sqlite_service.project()
    assert sqlite_service.call("POST", f"/projects/{project}/imports", Role.mapper).status_code == 422
    assert sqlite_service.import_csv(project, LAB_CSV, fmt="xlsx").status_code == 422


def test_a_project_target_filter_restricts_suggestions_and_search(sqlite_service):
    body = {"name": "Urine", "source_system": "LIS", "target_terminology": "loinc", "target_filter": {"class": "UA"}}
    project = sqlite_service.call("POST", "/projects", Role.mapper, json=body).json()["id"]
    assert sqlite_service.import_csv(project).status_code == 200
    sqlite_service.suggest(project)
    glucose = sqlite_service.item(project, "GLU")["suggestions"]
    assert [s["code"] for s in glucose] == ["5767-9"]  # the one UA-class concept, though it shares no word
    found = sqlite_service.call("GET", f"/projects/{project}/search", Role.viewer, params={"q": "sodium"}).json()
    assert [c["code"] for c in found] == ["5767-9"]


def test_a_target_filter_nothing_meets_is_422_and_stores_nothing(sqlite_service):
    body = {
        "name": "Nothing",
        "source_system": "LIS",
        "target_terminology": "loinc",
        "target_filter": {"class": "NOPE"},
    }
    project = sqlite_service.call("POST", "/projects", Role.mapper, json=body).json()["id"]
    assert sqlite_service.import_csv(project).status_code == 200
    response = sqlite_service.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"top_k": 3})
    assert response.status_code == 422 and "target filter" in response.json()["detail"]
    assert sqlite_service.item(project, "GLU")["suggestions"] == []
