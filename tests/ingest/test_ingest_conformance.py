"""Structural findings per message type, counted per sending facility."""

from __future__ import annotations

from hl7_messages import HL7_SAMPLES, oru

from ingest import conformance, hl7v2


def _findings(text: str) -> list[conformance.Finding]:
    return conformance.check(hl7v2.read_messages(text)[0])


def test_a_clean_result_has_no_findings():
    assert _findings(oru("NM|GLU^Glucose^L||5.4|mmol/L|3.9-6.1|N|||F|||20240105093000")) == []


def test_missing_fields_bad_types_and_table_values_are_found():
    findings = _findings(
        oru("NM|GLU^Glucose^L||five|mmol/L||N|||F", "NM|GLU^Glucose^L||5|mmol/L||ZZ|||Q", "NM|^^L||5|mmol/L||||")
    )
    found = {(f.rule, f.location) for f in findings}
    assert ("data_type", "OBX[1]-5") in found
    assert ("table_value", "OBX[2]-8") in found and ("table_value", "OBX[2]-11") in found
    assert ("required_field", "OBX[3]-3") in found and ("required_field", "OBX[3]-11") in found
    assert all(f.site == "NORTH LAB" and f.message_control_id == "MSG1" for f in findings)


def test_required_segments_per_message_type():
    no_obx = "\r".join(oru("NM|X^Y^L||1|||||F").split("\r")[:-1])
    assert ("required_segment", "OBX") in {(f.rule, f.location) for f in _findings(no_obx)}
    adt = "MSH|^~\\&|A|EAST|||20240101||ADT^A01|A1|P|2.5\rPID|1||9^^^H^MR"
    assert ("required_segment", "EVN") in {(f.rule, f.location) for f in _findings(adt)}


def test_unreadable_messages_and_counts_per_site():
    messages = hl7v2.read_messages(
        "\r".join([oru("NM|G^G^L||x||||||F", site="A"), oru("NM|G^G^L||y||||||F", site="A", control_id="2")])
    ) + hl7v2.read_messages(b"not hl7 at all")
    findings = conformance.check_all(messages)
    counts = conformance.count_by_site(findings)
    assert counts[0] == {
        "site": "A",
        "message_type": "ORU^R01",
        "rule": "data_type",
        "location": "OBX-5",
        "severity": "error",
        "count": 2,
    }
    assert any(c["rule"] == "unreadable" for c in counts)
    assert conformance.messages_by_site(messages) == {"A": 2, "": 1}


def test_sample_messages_are_checked_without_errors_escaping():
    messages = [m for path in sorted(HL7_SAMPLES.glob("*.hl7")) for m in hl7v2.read_file(path)]
    findings = conformance.check_all(messages)
    assert all(isinstance(f.as_dict(), dict) for f in findings)
    assert not any(f.rule == "unreadable" for f in findings)
