"""Local codes from rows: counted, described, and the sender's own standard codes left out."""

from __future__ import annotations

from hl7_messages import HL7_SAMPLES, oru

from ingest import fhir, hl7v2
from ingest.local_codes import collect_local_codes


def _rows(*messages: str) -> list[dict]:
    return hl7v2.flatten_all(m for text in messages for m in hl7v2.read_messages(text))


def test_local_obx_codes_are_counted_with_their_context_and_messages():
    rows = _rows(
        oru("NM|GLU^Glucose fasting^99LAB||5.4|mmol/L|3.9-6.1|N|||F", "NM|8480-6^Systolic^LN||120|mm[Hg]||||F"),
        oru("NM|GLU^Glucose, fasting^99LAB||7.9|mmol/L|3.9-6.1|H|||F", control_id="MSG2"),
        oru("NM|GLU^Glucose fasting^99LAB||99|mg/dL||||F", control_id="MSG3"),
    )
    codes = collect_local_codes(rows)
    assert [c.code for c in codes] == ["GLU"]  # the LOINC-coded OBX is not local; PANEL1 (OBR-4) is not a result
    glucose = codes[0]
    assert glucose.frequency == 3 and glucose.text == "Glucose fasting" and glucose.field == "OBX-3"
    item = glucose.review_item()
    assert item["context"]["units"] == {"mmol/L": 2, "mg/dL": 1}
    assert item["context"]["value_types"] == {"NM": 3}
    assert item["context"]["numeric_range"] == [5.4, 99.0]
    assert item["context"]["abnormal_flags"] == {"N": 1, "H": 1}
    assert item["context"]["site"] == "NORTH LAB"
    assert item["provenance"]["message_ids"] == ["MSG1", "MSG2", "MSG3"]
    assert len(set(item["provenance"]["message_sha256"])) == 3


def test_codes_the_sender_already_mapped_are_left_out_or_flagged():
    rows = _rows(
        oru("NM|K^Potassium^L^2823-3^Potassium SerPl-sCnc^LN||4.1|mmol/L||||F", "NM|NA^Sodium^L||140|mmol/L||||F")
    )
    assert [c.code for c in collect_local_codes(rows)] == ["NA"]
    flagged = {c.code: c for c in collect_local_codes(rows, include_coded=True)}
    assert flagged["K"].already_coded == "LOINC" and flagged["K"].standard_code == "2823-3"
    assert flagged["NA"].already_coded is None


def test_the_same_code_from_two_sites_is_two_local_codes():
    rows = _rows(
        oru("NM|GLU^Glucose^L||5|mmol/L||||F", site="NORTH"), oru("NM|GLU^Glucose^L||5|mmol/L||||F", site="SOUTH")
    )
    assert sorted(c.site for c in collect_local_codes(rows)) == ["NORTH", "SOUTH"]


def test_a_chosen_field_and_the_defaults_for_orders_and_diagnoses():
    rows = _rows(oru("NM|GLU^Glucose^L||5|mmol/L||||F", obr_code="BMP^Basic metabolic panel^LOCAL"))
    assert [(c.code, c.field) for c in collect_local_codes(rows, field="OBR-4")] == [("BMP", "OBR-4")]
    orders = hl7v2.flatten_all(hl7v2.read_file(HL7_SAMPLES / "MDHHS-OML-O21-2.hl7"))
    order_codes = collect_local_codes(orders)
    assert [(c.code, c.field) for c in order_codes] == [("1320", "OBR-4"), ("1680", "OBR-4")]
    adt = hl7v2.read_messages(
        "MSH|^~\\&|ADT|EAST|||20240101||ADT^A01|A1|P|2.3\rEVN|A01|20240101\rPID|1||9^^^H^MR\r"
        "DG1|1||D-17^Sugar disease^LOCALDX\rDG1|2||E11.9^Type 2 diabetes^I10"
    )
    diagnoses = collect_local_codes(hl7v2.flatten_all(adt))
    assert [(c.code, c.field, c.frequency) for c in diagnoses] == [("D-17", "DG1-3", 1)]  # once, not also via ADT


def test_fhir_rows_give_local_codings_too():
    bundle = (
        '{"resourceType": "Bundle", "id": "b1", "meta": {"source": "urn:site:east"}, "entry": ['
        '{"resource": {"resourceType": "Observation", "id": "o1", "code": {"coding": ['
        '{"system": "http://lab.example/codes", "code": "GLU", "display": "Glucose"}]},'
        ' "valueQuantity": {"value": 5.1, "unit": "mmol/L"}}},'
        '{"resource": {"resourceType": "Observation", "id": "o2", "code": {"coding": ['
        '{"system": "http://loinc.org", "code": "2345-7"}]}}}]}'
    )
    documents = fhir.read_documents(bundle)
    codes = collect_local_codes(documents[0].rows)
    assert [(c.code, c.field, c.site) for c in codes] == [("GLU", "Observation.code", "urn:site:east")]
    assert codes[0].review_item()["provenance"]["message_ids"] == ["b1"]
