"""Column roles from approved field mappings, and per-analyte drift that counts patients rather than rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors.checks.drift import patient_sample
from monitors.contract import Contract, ValueUnitPair, infer_contract
from monitors.field_roles import FieldMapping, field_roles, role_of
from monitors.profile import PATIENT_SAMPLE, Profile, merge_patient_sums, patient_hashes, profile_frame
from monitors.report import score_batch

ANALYTES = {
    "GLU": (100.0, 15.0, "MGDL"),
    "NA": (140.0, 3.0, "MMOLL"),
    "K": (4.2, 0.4, "MMOLL"),
    "HGB": (13.5, 1.5, "GDL"),
}
MAPPED = {
    "PAT": "measurement.person_id",
    "LOC": "visit_occurrence.care_site_id",
    "TST": "measurement.measurement_source_value",
    "RESULT_TXT": "measurement.value_as_number",
    "UOM": "measurement.unit_source_value",
}


def lab_extract(rows: int, seed: int, glucose_in_mmol: bool = False) -> pd.DataFrame:
    """A LIS extract whose names and spellings defeat inference: six-digit patient numbers read as a code, the
    site in `LOC`, local unit codes (MGDL, MMOLL) that are no unit spelling. Patients differ from each other."""
    rng = np.random.default_rng(seed)
    patients = rng.integers(100001, 100061, rows)
    codes = rng.choice(list(ANALYTES), rows)
    offset = np.random.default_rng(99).normal(0, 0.5, 61)[patients - 100001]
    values = np.array([ANALYTES[c][0] + ANALYTES[c][1] * (o + rng.normal(0, 0.8)) for c, o in zip(codes, offset)])
    units = np.array([ANALYTES[c][2] for c in codes], dtype=object)
    site = np.where(patients % 2, "A", "B")
    if glucose_in_mmol:  # site B's analyser switched glucose to mmol/L, under the local unit code MMOLL
        moved = (codes == "GLU") & (site == "B")
        values[moved], units[moved] = values[moved] / 18.0, "MMOLL"
    results = [f"{v:.1f}" for v in values]
    return pd.DataFrame({"PAT": patients, "LOC": site, "TST": codes, "RESULT_TXT": results, "UOM": units})


def mappings(**targets: str) -> list[FieldMapping]:
    return [FieldMapping(f"LAB.{column}", column, target, "alice") for column, target in targets.items()]


@pytest.mark.parametrize(
    ("target", "role"),
    [
        ("measurement.value_as_number", "value"),
        ("measurement.unit_source_value", "unit"),
        ("measurement.unit_concept_id", "unit"),
        ("measurement.measurement_source_value", "code"),
        ("measurement.measurement_concept_id", "code"),
        ("measurement.measurement_type_concept_id", None),  # how it was recorded, not what
        ("visit_occurrence.care_site_id", "site"),
        ("person.location_id", "site"),
        ("measurement.person_id", "patient"),
        ("measurement.measurement_datetime", "time"),
        ("Observation.value[x]", "value"),
        ("Observation.valueQuantity.value", "value"),
        ("Observation.valueQuantity.unit", "unit"),
        ("Observation.code", "code"),
        ("Observation.subject", "patient"),
        ("Observation.effective[x]", "time"),
        ("Observation.effectiveDateTime", "time"),
        ("Observation.note", None),
    ],
)
def test_target_fields_have_monitoring_roles(target, role):
    found = role_of(target)
    assert (found[0] if found else None) == role


def test_approved_mappings_give_roles_and_the_lab_triple_where_inference_fails():
    reference = lab_extract(1500, 1)
    inferred = infer_contract(reference)
    assert inferred.column("UOM").kind == "categorical" and not inferred.value_unit_pairs
    assert inferred.column("PAT").kind == "code" and inferred.patient_column is None

    roles = field_roles(mappings(**MAPPED), list(reference.columns))
    contract = infer_contract(reference, roles=roles.roles, pairs=roles.pairs)
    assert {c.name: c.kind for c in contract.columns} == {
        "PAT": "id",
        "LOC": "categorical",
        "TST": "code",
        "RESULT_TXT": "numeric",
        "UOM": "unit",
    }
    assert [(p.value, p.unit, p.code) for p in contract.value_unit_pairs] == [("RESULT_TXT", "UOM", "TST")]
    assert (contract.segment_columns, contract.patient_column) == (["LOC"], "PAT")
    explained = "\n".join(contract.explain())
    assert "approved field mapping LAB.RESULT_TXT -> measurement.value_as_number, by alice" in explained
    assert "approved field mappings: LAB.RESULT_TXT -> measurement.value_as_number" in explained


def test_roles_from_mappings_catch_a_unit_change_that_inference_misses():
    reference, switched = lab_extract(1500, 1), lab_extract(900, 3, glucose_in_mmol=True)
    assert not [
        a for a in score_batch(reference, switched, infer_contract(reference)).alerts if a.check == "unit_change"
    ]

    roles = field_roles(mappings(**MAPPED), list(reference.columns))
    contract = infer_contract(reference, roles=roles.roles, pairs=roles.pairs)
    assert score_batch(reference, lab_extract(900, 5), contract).alerts == []
    [alert] = score_batch(reference, switched, contract).alerts
    assert (alert.check, alert.column, alert.segment) == ("unit_change", "UOM[GLU]", "B")
    assert "MGDL -> MMOLL" in alert.message and "glucose" in alert.message


def test_columns_and_mappings_that_do_not_fit_are_left_to_inference():
    columns = ["PAT", "RESULT_TXT", "result_txt2"]
    roles = field_roles(
        mappings(PAT="measurement.person_id", OTHER="measurement.value_as_number", RESULT_TXT="note.note_text")
        + [
            FieldMapping("LAB2.PAT", "PAT", "measurement.value_as_number", "bob"),  # the same name, another role
            FieldMapping("LAB.RESULT_TXT2", "RESULT_TXT2", "measurement.value_as_number", "bob"),
        ],
        columns,
    )
    assert set(roles.roles) == {"result_txt2"}  # matched ignoring case
    assert roles.roles["result_txt2"].role == "value" and "by bob" in roles.roles["result_txt2"].reason
    assert roles.notes == [
        "PAT: mapped to fields with different roles (LAB.PAT -> measurement.person_id, "
        "LAB2.PAT -> measurement.value_as_number); left to inference"
    ]


# ---- per-analyte drift by patient --------------------------------------------------------------------------------


LEVELS = np.random.default_rng(5).normal(70, 15, 1000)  # each patient's own weight


def patients_frame(patients: np.ndarray, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """One analyte measured many times per patient around the patient's own level (ICC about 0.9)."""
    values = LEVELS[patients] + np.random.default_rng(seed).normal(0, 5, patients.size) + shift
    return pd.DataFrame({"person_id": patients, "code": "29463-7", "value": values.round(1), "unit": "kg"})


def weight_contract(frame: pd.DataFrame) -> Contract:
    roles = {"code": "code", "value": "value", "unit": "unit", "person_id": "patient"}
    return infer_contract(frame, roles=roles, pairs=[ValueUnitPair("value", "unit", "code")])


def lab_drift(reference: pd.DataFrame, batch: pd.DataFrame, contract: Contract) -> list:
    return [a for a in score_batch(reference, batch, contract).alerts if a.check == "lab_drift"]


def test_other_patients_are_case_mix_while_the_same_patients_shifting_is_drift():
    rng = np.random.default_rng(0)
    reference = patients_frame(rng.integers(0, 40, 600), seed=1)
    contract = weight_contract(reference)
    assert contract.patient_column == "person_id" and len(contract.value_unit_pairs) == 1
    upper_half = np.argsort(LEVELS[:40])[26:32]  # six of the forty patients, heavier than most
    others = patients_frame(rng.choice(upper_half, 300), seed=3)
    assert lab_drift(reference, others, contract) == []
    rows_only = Contract.from_dict({**contract.to_dict(), "patient_column": None})
    assert lab_drift(reference, others, rows_only), "counting rows, six patients' weights look like drift"

    same = patients_frame(rng.integers(0, 40, 300), seed=4, shift=0.5 * reference.value.std())
    [alert] = lab_drift(reference, same, contract)
    assert "within the same" in alert.message and alert.details["paired_patients"] == 40


def test_patient_sums_merge_exactly_and_keep_the_smallest_hashes():
    frame = patients_frame(np.arange(PATIENT_SAMPLE + 50).repeat(2), seed=1)
    contract = weight_contract(frame)
    halves = [profile_frame(part, contract) for part in (frame.iloc[::2], frame.iloc[1::2])]
    whole = profile_frame(frame, contract).overall().pairs[0].patients[("29463-7", "kg")]
    merged = merge_patient_sums(*(h.overall().pairs[0].patients[("29463-7", "kg")] for h in halves))
    assert len(whole) == PATIENT_SAMPLE and merged.keys() == whole.keys()
    assert all(merged[h][0] == whole[h][0] and merged[h][1] == pytest.approx(whole[h][1]) for h in whole)
    assert sorted(whole) == sorted(set(patient_hashes(frame.person_id).tolist()))[:PATIENT_SAMPLE]
    sample = patient_sample(whole, merged, 2 * PATIENT_SAMPLE, 2 * PATIENT_SAMPLE)
    assert sample.shared == PATIENT_SAMPLE and sample.paired_p == 1.0 and 0.7 < sample.icc <= 1.0


def test_profiles_of_schema_1_read_with_no_patients():
    frame = patients_frame(np.arange(40).repeat(3), seed=1)
    stored = profile_frame(frame, weight_contract(frame)).to_dict()
    stored["schema"] = 1
    for segment in stored["segments"].values():
        for pair in segment["pairs"]:
            del pair["patients"]
    assert Profile.from_dict(stored).overall().pairs[0].patients == {}
