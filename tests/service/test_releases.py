"""Import -> suggest -> decide -> release -> diff -> export, each export validated by its own standard's
library (fhir.resources for ConceptMap R4B/R5, sssom for SSSOM), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fhir.resources.conceptmap import ConceptMap as ConceptMapR5
from fhir.resources.R4B.conceptmap import ConceptMap as ConceptMapR4B

from service.store.tables import Role


@pytest.fixture
def released(service):
    """Release 1: GLU equivalent, HBA1C narrower-than-target, UA unmappable; release 2 changes them."""
    project = service.ready_project()
    service.decide(project, "GLU", action="approve")
    service.decide(project, "HBA1C", action="remap", target_code="4548-4", relationship="source-is-narrower-than-target")
    service.decide(project, "UA", action="unmappable", comment="point-of-care only")
    service.decide(project, "K", action="flag", comment="which specimen?")
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={"note": "first"}).status_code == 201
    service.decide(project, "NA", action="approve", relationship="related-to")
    service.decide(project, "HBA1C", action="remap", target_code="4548-4", relationship="equivalent")
    service.decide(project, "UA", action="reject")
    assert service.call("POST", f"/projects/{project}/releases", Role.admin, json={}).status_code == 201
    return project


def export(service, project: int, number: int, fmt: str) -> str:
    response = service.call("GET", f"/projects/{project}/releases/{number}/export", Role.viewer, params={"format": fmt})
    assert response.status_code == 200, response.text
    assert f"release-{number}" in response.headers["content-disposition"]
    return response.text


def test_releases_are_numbered_snapshots_and_diff(service, released):
    releases = service.call("GET", f"/projects/{released}/releases", Role.viewer).json()
    assert [(r["number"], r["entry_count"]) for r in releases] == [(1, 3), (2, 3)]
    first = service.call("GET", f"/projects/{released}/releases/1", Role.viewer).json()
    assert {e["source_code"]: e["status"] for e in first["entries"]} == {"GLU": "approved", "HBA1C": "approved", "UA": "unmappable"}
    diff = service.call("GET", f"/projects/{released}/releases/2/diff", Role.viewer, params={"base": 1}).json()
    assert [e["source_code"] for e in diff["added"]] == ["NA"]
    assert [e["source_code"] for e in diff["removed"]] == ["UA"]
    assert [(c["before"]["relationship"], c["after"]["relationship"]) for c in diff["changed"]] == [
        ("source-is-narrower-than-target", "equivalent")
    ]
    assert service.call("GET", f"/projects/{released}/releases/3", Role.viewer).status_code == 404


def test_fhir_r4_conceptmap(service, released):
    resource = json.loads(export(service, released, 1, "fhir-r4"))
    ConceptMapR4B.model_validate(resource)  # R4 and R4B share ConceptMap's structure
    elements = {e["code"]: e for e in resource["group"][0]["element"]}
    assert resource["group"][0]["target"] == "http://loinc.org"
    assert elements["GLU"]["target"][0]["equivalence"] == "equivalent"
    hba1c = elements["HBA1C"]["target"][0]
    assert (hba1c["code"], hba1c["equivalence"]) == ("4548-4", "wider")  # source narrower = target wider
    assert elements["UA"]["target"][0]["equivalence"] == "unmatched"


def test_fhir_r5_conceptmap(service, released):
    resource = json.loads(export(service, released, 1, "fhir-r5"))
    ConceptMapR5.model_validate(resource)
    elements = {e["code"]: e for e in resource["group"][0]["element"]}
    assert elements["HBA1C"]["target"][0]["relationship"] == "source-is-narrower-than-target"
    assert "equivalence" not in json.dumps(resource)
    assert elements["UA"] == {"code": "UA", "display": "Urinalysis dipstick", "noMap": True}
    assert resource["url"] == f"urn:crosswalk:conceptmap:{released}" and resource["version"] == "1"


def test_sssom_parses_back(service, released, tmp_path):
    from sssom.parsers import parse_sssom_table

    path = tmp_path / "release.sssom.tsv"
    path.write_text(export(service, released, 1, "sssom"))
    frame = parse_sssom_table(path).df.set_index("subject_id")
    assert sorted(frame.index) == ["SRC:GLU", "SRC:HBA1C"]  # unmappable codes state no mapping
    assert frame.loc["SRC:GLU", "predicate_id"] == "skos:exactMatch"
    assert frame.loc["SRC:HBA1C", "predicate_id"] == "skos:broadMatch"
    assert frame.loc["SRC:HBA1C", "object_id"] == "LOINC:4548-4"
    assert set(frame["mapping_justification"]) == {"semapv:ManualMappingCuration"}


def test_omop_source_to_concept_map(service, released):
    rows = list(csv.DictReader(io.StringIO(export(service, released, 1, "omop"))))
    assert list(rows[0]) == [
        "source_code", "source_concept_id", "source_vocabulary_id", "source_code_description", "target_concept_id",
        "target_vocabulary_id", "valid_start_date", "valid_end_date", "invalid_reason",
    ]  # fmt: skip
    by_code = {r["source_code"]: r for r in rows}
    assert by_code["GLU"]["source_concept_id"] == "0" and by_code["GLU"]["target_vocabulary_id"] == "LOINC"
    assert by_code["UA"]["target_concept_id"] == "0" and by_code["GLU"]["valid_end_date"] == "2099-12-31"
    assert len(by_code["GLU"]["source_vocabulary_id"]) <= 20


def test_usagi_export_reimports(service, released):
    text = export(service, released, 2, "usagi")
    rows = {r["sourceCode"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["NA"]["equivalence"] == "INEXACT" and rows["GLU"]["mappingStatus"] == "APPROVED"
    other = service.project(name="Usagi round trip")
    files = {"file": ("usagi.csv", text.encode(), "text/csv")}
    response = service.call("POST", f"/projects/{other}/imports", Role.mapper, params={"format": "usagi"}, files=files)
    assert response.json()["created"] == 3


def test_unknown_export_format_is_422(service, released):
    response = service.call("GET", f"/projects/{released}/releases/1/export", Role.viewer, params={"format": "xls"})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
