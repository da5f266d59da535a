"""Import -> suggest -> decide -> release -> diff -> export, each export validated against its consumer
(fhir.resources for ConceptMap R4B/R5, sssom for SSSOM, the CDM 5.4 specification for OMOP's
SOURCE_TO_CONCEPT_MAP, Usagi's columns and enumerations), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from fhir.resources.conceptmap import ConceptMap as ConceptMapR5
from fhir.resources.R4B.conceptmap import ConceptMap as ConceptMapR4B

from models.catalog import Catalog
from service.store.tables import Role

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
# Real OMOP concepts (OHDSI vocabularies, as in the Synthea27Nj CONCEPT.csv): LOINC code -> concept_id.
OMOP_LOINC = {"2345-7": 3004501, "4548-4": 3004410, "2951-2": 3019550, "2823-3": 3023103}
CONCEPT_HEADER = (
    "concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code,invalid_reason\n"
)
# Usagi's CodeMapping enumerations (OHDSI/Usagi): what it accepts back.
USAGI_STATUSES = {"APPROVED", "UNCHECKED", "AUTO_MAPPED", "AUTO_MAPPED_TO_1", "INVALID_TARGET", "FLAGGED", "IGNORED"}
USAGI_EQUIVALENCES = {"EQUAL", "EQUIVALENT", "WIDER", "NARROWER", "INEXACT", "UNMATCHED", "UNREVIEWED"}


@pytest.fixture
def released(service):
    """Release 1: GLU equivalent, HBA1C narrower-than-target, UA unmappable; release 2 changes them."""
    project = service.ready_project()
    service.decide(project, "GLU", action="approve")
    service.decide(
        project, "HBA1C", action="remap", target_code="4548-4", relationship="source-is-narrower-than-target"
    )
    service.decide(project, "UA", action="unmappable", comment="point-of-care only")
    service.decide(project, "K", action="flag", comment="which specimen?")
    assert (
        service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={"note": "first"}).status_code == 201
    )
    service.decide(project, "NA", action="approve", relationship="related-to")
    service.decide(project, "HBA1C", action="remap", target_code="4548-4", relationship="equivalent")
    service.decide(project, "UA", action="reject")
    assert service.call("POST", f"/projects/{project}/releases", Role.admin, json={}).status_code == 201
    return project


def export(service, project: int, number: int, fmt: str) -> str:
    response = export_response(service, project, number, fmt)
    assert response.status_code == 200, response.text
    assert f"release-{number}" in response.headers["content-disposition"]
    return response.text


def export_response(service, project: int, number: int, fmt: str):
    return service.call("GET", f"/projects/{project}/releases/{number}/export", Role.viewer, params={"format": fmt})


def load_omop_vocabulary(service, tmp_path: Path, concepts: dict[str, int], name: str = "athena-v5") -> None:
    """An OMOP CONCEPT.csv holding these LOINC concepts, loaded into the service's catalog."""
    rows = [f"{cid},LOINC {code},Measurement,LOINC,Lab Test,S,{code}," for code, cid in concepts.items()]
    rows.append("40000001,Not LOINC,Condition,SNOMED,Clinical Finding,S,2345-7,")  # the same code in another vocabulary
    path = tmp_path / f"{name}.csv"
    path.write_text(CONCEPT_HEADER + "\n".join(rows) + "\n")
    Catalog(service.settings.terminologies_dir).add("omop", path, name)


def test_releases_are_numbered_snapshots_and_diff(service, released):
    releases = service.call("GET", f"/projects/{released}/releases", Role.viewer).json()
    assert [(r["number"], r["entry_count"]) for r in releases] == [(1, 3), (2, 3)]
    first = service.call("GET", f"/projects/{released}/releases/1", Role.viewer).json()
    assert {e["source_code"]: e["status"] for e in first["entries"]} == {
        "GLU": "approved",
        "HBA1C": "approved",
        "UA": "unmappable",
    }
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


def test_omop_source_to_concept_map_meets_the_cdm_54_spec(service, released, tmp_path):
    load_omop_vocabulary(service, tmp_path, OMOP_LOINC)
    rows = list(csv.DictReader(io.StringIO(export(service, released, 1, "omop"))))
    spec = list(csv.DictReader((SAMPLES / "omop-cdm" / "OMOP_CDMv5.4_source_to_concept_map.csv").open()))
    assert list(rows[0]) == [field["cdmFieldName"] for field in spec]
    for row in rows:
        for field in spec:
            value = row[field["cdmFieldName"]]
            assert value or field["isRequired"] == "No", f"{field['cdmFieldName']} is required"
            kind = field["cdmDatatype"]
            if kind == "integer":
                int(value)
            elif kind == "date":
                date.fromisoformat(value)
            elif kind.startswith("varchar"):
                assert len(value) <= int(kind[8:-1]), f"{field['cdmFieldName']} over {kind}"
    by_code = {r["source_code"]: r for r in rows}
    assert (by_code["GLU"]["target_concept_id"], by_code["GLU"]["target_vocabulary_id"]) == ("3004501", "LOINC")
    assert by_code["HBA1C"]["target_concept_id"] == "3004410"
    # Unmappable stays apart from approved: OMOP's "no matching concept" (0, vocabulary 'None').
    assert (by_code["UA"]["target_concept_id"], by_code["UA"]["target_vocabulary_id"]) == ("0", "None")
    assert by_code["GLU"]["source_concept_id"] == "0" and by_code["GLU"]["valid_end_date"] == "2099-12-31"


def test_omop_and_usagi_are_refused_without_an_omop_vocabulary(service, released, tmp_path):
    for fmt in ("omop", "usagi"):
        response = export_response(service, released, 1, fmt)
        assert response.status_code == 409 and response.headers["content-type"] == "application/problem+json"
        assert (
            "no OMOP vocabulary is loaded" in response.json()["detail"] and "--format omop" in response.json()["detail"]
        )
    load_omop_vocabulary(service, tmp_path, {"2345-7": 3004501})  # HBA1C's 4548-4 is missing from it
    detail = export_response(service, released, 1, "omop").json()["detail"]
    assert "4548-4" in detail and "athena-v5" in detail
    assert export_response(service, released, 1, "fhir-r4").status_code == 200  # formats keyed by code are unaffected


def test_usagi_export_carries_concept_ids_and_reimports(service, released, tmp_path):
    load_omop_vocabulary(service, tmp_path, OMOP_LOINC)
    text = export(service, released, 2, "usagi")
    rows = {r["sourceCode"]: r for r in csv.DictReader(io.StringIO(text))}
    assert list(next(iter(rows.values()))) == [
        "sourceCode", "sourceName", "sourceFrequency", "sourceAutoAssignedConceptIds", "matchScore", "mappingStatus",
        "equivalence", "statusSetBy", "statusSetOn", "conceptId", "conceptName", "domainId", "mappingType", "comment",
        "createdBy", "createdOn", "assignedReviewer",
    ]  # fmt: skip
    assert {r["mappingStatus"] for r in rows.values()} <= USAGI_STATUSES
    assert {r["equivalence"] for r in rows.values()} <= USAGI_EQUIVALENCES
    assert rows["NA"]["equivalence"] == "INEXACT" and rows["GLU"]["mappingStatus"] == "APPROVED"
    assert (rows["GLU"]["conceptId"], rows["GLU"]["domainId"]) == ("3004501", "Measurement")
    assert all(int(r["conceptId"]) > 0 for r in rows.values())  # release 2 has no unmappable code
    other = service.project(name="Usagi round trip")
    files = {"file": ("usagi.csv", text.encode(), "text/csv")}
    response = service.call("POST", f"/projects/{other}/imports", Role.mapper, params={"format": "usagi"}, files=files)
    assert response.json()["created"] == 3


def test_usagi_unmappable_is_concept_zero_unmatched(service, released, tmp_path):
    load_omop_vocabulary(service, tmp_path, OMOP_LOINC)
    rows = {r["sourceCode"]: r for r in csv.DictReader(io.StringIO(export(service, released, 1, "usagi")))}
    assert (rows["UA"]["conceptId"], rows["UA"]["equivalence"], rows["UA"]["conceptName"]) == (
        "0",
        "UNMATCHED",
        "Unmapped",
    )
    assert rows["GLU"]["conceptId"] == "3004501" and rows["GLU"]["equivalence"] == "EQUAL"


def test_unknown_export_format_is_422_listing_the_known_ones(service, released):
    response = export_response(service, released, 1, "xls")
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert all(name in response.text for name in ("fhir-r4", "fhir-r5", "sssom", "omop", "usagi"))


def test_target_identity_comes_from_the_loaded_terminology_not_its_name(service, tmp_path):
    """LOINC loaded as `loinc-2.78` exports as http://loinc.org (FHIR, $translate) and LOINC: (SSSOM)."""
    Catalog(service.settings.terminologies_dir).add(
        "loinc", SAMPLES / "terminologies" / "loinc" / "Loinc.csv", "loinc-2.78"
    )
    body = {"name": "versioned", "source_system": "St Mary LIS", "target_terminology": "loinc-2.78"}
    project = service.call("POST", "/projects", Role.mapper, json=body).json()["id"]
    assert service.import_csv(project).status_code == 200
    service.suggest(project)
    service.decide(project, "GLU", action="approve")
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    assert json.loads(export(service, project, 1, "fhir-r4"))["group"][0]["target"] == "http://loinc.org"
    sssom = export(service, project, 1, "sssom")
    assert '#  LOINC: "https://loinc.org/"' in sssom and "\tLOINC:2345-7\t" in sssom
    params = {"project": str(project), "code": "GLU"}
    answer = service.call("GET", "/fhir/ConceptMap/$translate", Role.viewer, params=params).json()
    [match] = [p for p in answer["parameter"] if p["name"] == "match"]
    assert {p["name"]: p for p in match["part"]}["concept"]["valueCoding"]["system"] == "http://loinc.org"


def test_an_unknown_local_terminology_keeps_a_crosswalk_system(service):
    body = {"name": "local", "source_system": "St Mary LIS", "target_terminology": "house-codes"}
    project = service.call("POST", "/projects", Role.mapper, json=body).json()["id"]
    assert service.import_csv(project).status_code == 200
    service.suggest(project)
    service.decide(project, "GLU", action="approve")
    service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={})
    assert (
        json.loads(export(service, project, 1, "fhir-r5"))["group"][0]["target"]
        == "urn:crosswalk:terminology:house-codes"
    )
    detail = export_response(service, project, 1, "omop").json()["detail"]
    assert "not in the OMOP vocabularies" in detail
