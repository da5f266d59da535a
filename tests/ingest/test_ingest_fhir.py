"""FHIR documents in: Bundles, NDJSON and single resources, with a reason for what cannot be read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ingest import fhir

MONITORING_NDJSON = Path(__file__).resolve().parents[2] / "data" / "samples" / "monitoring" / "fhir_resources.ndjson"


def test_ndjson_sample_reads_one_row_per_supported_resource():
    documents = fhir.read_file(MONITORING_NDJSON)
    assert all(d.ok for d in documents)
    rows = [row for d in documents for row in d.rows]
    kinds = {d.resource_type for d in documents}
    assert "Patient" in kinds and len(rows) == sum(d.resource_type != "Patient" for d in documents)
    first = documents[0].rows[0]
    assert first["observation_code"] == "8480-6" and first["observation_system"] == "http://loinc.org"
    assert first["value"] == "121.0" and first["unit_code"] == "mm[Hg]" and first["site"] == "urn:site:north"
    assert first["message_sha256"] == hashlib.sha256(documents[0].raw).hexdigest()


def test_each_resource_type_maps_to_its_row_kind():
    resources = [
        {"resourceType": "Condition", "code": {"coding": [{"system": "x", "code": "C1"}]}, "onsetDateTime": "2020"},
        {"resourceType": "Procedure", "code": {"coding": [{"system": "x", "code": "P1"}]}},
        {"resourceType": "MedicationRequest", "medicationCodeableConcept": {"coding": [{"code": "M1"}]}},
        {"resourceType": "MedicationStatement", "medication": {"concept": {"coding": [{"code": "M2"}]}}},
        {"resourceType": "Immunization", "vaccineCode": {"coding": [{"code": "V1"}]}, "lotNumber": "L9"},
    ]
    rows = [row for r in resources for row in fhir.flatten(r)]
    assert [r["row_kind"] for r in rows] == ["diagnosis", "procedure", "medication", "medication", "immunization"]
    assert [
        r.get("diagnosis_code") or r.get("procedure_code") or r.get("medication_code") or r.get("vaccine_code")
        for r in rows
    ] == [
        "C1",
        "P1",
        "M1",
        "M2",
        "V1",
    ]
    assert rows[0]["diagnosis_datetime"] == "2020" and rows[-1]["lot_number"] == "L9"


def test_local_coding_is_primary_and_standard_one_the_alternate():
    concept = {
        "coding": [
            {"system": "http://loinc.org", "code": "2345-7", "display": "Glucose SerPl-mCnc"},
            {"system": "urn:oid:1.2.3.4.5", "code": "GLU", "display": "Glucose"},
        ]
    }
    row = fhir.coded(concept, "observation")
    assert (row["observation_code"], row["observation_alt_code"], row["observation_alt_system"]) == (
        "GLU",
        "2345-7",
        "http://loinc.org",
    )


def test_bad_lines_get_reasons_and_good_lines_still_flow(tmp_path):
    path = tmp_path / "feed.ndjson"
    good = {"resourceType": "Observation", "id": "o1", "code": {"coding": [{"code": "X"}]}}
    path.write_bytes(
        b"\n".join([json.dumps(good).encode(), b"{not json", b"[1, 2]", b'{"resourceType": "Bundle", "entry": 3}'])
    )
    documents = fhir.read_file(path)
    assert [d.ok for d in documents] == [True, False, False, False]
    assert documents[1].error.startswith(f"{path}:2: invalid JSON")
    assert "resourceType" in documents[2].error
    assert "Bundle.entry" in documents[3].error
    assert documents[0].rows[0]["observation_code"] == "X"
