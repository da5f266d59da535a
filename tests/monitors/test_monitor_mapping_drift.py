"""Mapping drift: an approved local code whose data stops agreeing with its target, and a clean batch that
does not."""

from __future__ import annotations

from monitors.mapping_drift import ApprovedMapping, detect_mapping_drift

GLUCOSE, POTASSIUM, SBP, WEIGHT = "2339-0", "6298-4", "8480-6", "29463-7"
MAPPINGS = [
    ApprovedMapping(GLUCOSE, "2345-7", "MCnc", ["mg/dL"]),
    ApprovedMapping(POTASSIUM, "6298-4", "SCnc", ["mmol/L"]),
    ApprovedMapping(SBP, "8480-6", "Pres", ["mm[Hg]"]),
    ApprovedMapping(WEIGHT, "29463-7", units=["kg"]),  # property from the target's units
]


def test_clean_batch_raises_no_mapping_drift(reference, current, contract):
    assert detect_mapping_drift(reference, current, contract, MAPPINGS, segment="site") == []


def test_unit_whose_property_contradicts_the_target(reference, current, contract):
    rows = current.measurement_source_value == GLUCOSE
    current.loc[rows, "value_as_number"] = (current.loc[rows, "value_as_number"] / 18.016).round(1)
    current.loc[rows, "unit_source_value"] = "mmol/L"
    [evidence] = detect_mapping_drift(reference, current, contract, MAPPINGS, segment="site")
    assert (evidence.code, evidence.target, evidence.segment, evidence.severity) == (GLUCOSE, "2345-7", "*", "critical")
    assert evidence.figures["unit_property"] == "SCnc" and evidence.figures["target_property"] == "MCnc"
    assert "mass concentration" in evidence.reasons[0] and "/ 18" in evidence.reasons[0]


def test_values_jumping_while_other_codes_do_not(reference, current, contract):
    rows = current.measurement_source_value == SBP  # the item now carries another test, same unit string
    current.loc[rows, "value_as_number"] = current.loc[rows, "value_as_number"] * 0.6
    [evidence] = detect_mapping_drift(reference, current, contract, MAPPINGS)
    assert evidence.code == SBP and evidence.severity == "warning"
    assert evidence.figures["shift_sd"] > 1 and evidence.figures["others_sd"] < 0.25
    assert "other" in evidence.reasons[0]


def test_a_unit_that_agrees_with_the_target_is_not_drift(reference, current, contract):
    rows = current.measurement_source_value == POTASSIUM
    current.loc[rows, "unit_source_value"] = "mEq/L"  # same property (SCnc), same numbers
    assert detect_mapping_drift(reference, current, contract, MAPPINGS) == []


def test_unmapped_codes_are_not_judged(reference, current, contract):
    rows = current.measurement_source_value == GLUCOSE
    current.loc[rows, "unit_source_value"] = "mmol/L"
    assert detect_mapping_drift(reference, current, contract, [m for m in MAPPINGS if m.code != GLUCOSE]) == []
