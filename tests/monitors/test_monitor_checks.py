"""Each check family: a positive case that must alert on the right (check, column, segment), and a negative
case that must stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors.checks import CheckConfig
from monitors.contract import infer_contract
from monitors.profile import ALL, profile_frame
from monitors.report import score_batch
from monitors.rules import PlausibilityRules
from tests.conftest import HashingEncoder
from tests.monitors.conftest import keys

WEIGHT = "29463-7"
SBP = "8480-6"


def test_clean_split_raises_nothing(reference, current, contract):
    report = score_batch(reference, current, contract)
    assert report.alerts == [] and report.tests > 100


# ---- completeness -------------------------------------------------------------------------------------------------


def test_missingness_surge_at_one_site(reference, current, contract):
    south = current.index[current.site == "south"]
    current.loc[south[: int(0.4 * len(south))], "value_as_number"] = np.nan
    report = score_batch(reference, current, contract)
    assert ("completeness", "value_as_number", "south") in keys(report)
    alert = next(a for a in report.alerts if a.check == "completeness")
    assert "missing in" in alert.message and alert.message.startswith("site south:")
    assert not any(a.segment == "north" for a in report.alerts)


def test_small_missingness_change_is_below_the_floor(reference, current, contract):
    rows = current.index[current.value_as_number.notna()][:24]  # +3 points
    current.loc[rows, "value_as_number"] = np.nan
    assert not [a for a in score_batch(reference, current, contract).alerts if a.check == "completeness"]


def test_duplicate_burst(reference, current, contract):
    burst = pd.concat([current, current.sample(frac=0.15, random_state=1)], ignore_index=True)
    assert ("duplicates", "*", ALL) in {
        (a.check, a.column, "*") for a in score_batch(reference, burst, contract).alerts
    }
    resent_with_new_ids = burst.assign(measurement_id=np.arange(len(burst)))  # the row key is not content
    assert any(a.check == "duplicates" for a in score_batch(reference, resent_with_new_ids, contract).alerts)


# ---- conformance --------------------------------------------------------------------------------------------------


def test_schema_removed_renamed_and_new_columns(reference, current, contract):
    changed = current.drop(columns=["measurement_concept_id"]).rename(columns={"gender_source_value": "gender_value"})
    changed["extra_flag"] = "y"
    report = score_batch(reference, changed, contract)
    schema = {a.column: a for a in report.alerts if a.check == "schema"}
    assert set(schema) == {"measurement_concept_id", "gender_source_value", "extra_flag"}
    assert (
        schema["measurement_concept_id"].severity == "critical"
        and "removed" in schema["measurement_concept_id"].message
    )
    assert "renamed to gender_value" in schema["gender_source_value"].message
    assert "new column extra_flag" in schema["extra_flag"].message


def test_dtype_change_numbers_arrive_as_text(reference, current, contract):
    current["value_as_number"] = current["value_as_number"].map(lambda v: f"{v} units")
    report = score_batch(reference, current, contract)
    assert ("dtype", "value_as_number", ALL) in keys(report)
    assert not any(a.check == "format" and a.column == "value_as_number" for a in report.alerts)  # one root cause


def test_date_format_change(reference, current, contract):
    south = current.site == "south"
    current.loc[south, "measurement_date"] = pd.to_datetime(current.loc[south, "measurement_date"]).dt.strftime(
        "%d/%m/%Y"
    )
    report = score_batch(reference, current, contract)
    assert ("format", "measurement_date", "south") in keys(report)
    assert "do not parse as dates (%Y-%m-%d)" in next(a.message for a in report.alerts if a.check == "format")


def test_value_shape_change(reference, current, contract):
    current["gender_source_value"] = current["gender_source_value"].map({"M": "male", "F": "female"})
    report = score_batch(reference, current, contract)
    assert ("format", "gender_source_value", ALL) in keys(report)


def test_allowed_values(reference, current, contract):
    edited = infer_contract(reference, feed="labs")
    edited.column("gender_source_value").allowed = ["M", "F"]
    assert not [a for a in score_batch(reference, current, edited).alerts if a.check == "allowed_values"]
    current.loc[current.index[:40], "gender_source_value"] = "U"
    report = score_batch(reference, current, edited)
    assert ("allowed_values", "gender_source_value", ALL) in keys(report)


# ---- distribution drift -------------------------------------------------------------------------------------------


def _synthetic(n: int, shift: float = 0.0, seed: int = 0, mix=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "score": rng.normal(100 + shift * 15, 15, n),
            "grade": rng.choice(["a", "b", "c"], n, p=mix),
        }
    )


def test_numeric_drift_half_sd():
    ref, cur = _synthetic(3000), _synthetic(3000, shift=0.5, seed=1)
    report = score_batch(ref, cur, infer_contract(ref))
    [alert] = report.alerts
    assert (alert.check, alert.column) == ("drift", "score") and alert.statistic == pytest.approx(0.5, abs=0.1)


def test_large_n_tiny_shift_stays_quiet():
    """0.02 SD at n = 200,000: a p-value test says 'drift' (p ~ 1e-10); the effect-size floor says no."""
    ref, cur = _synthetic(200_000), _synthetic(200_000, shift=0.02, seed=1)
    report = score_batch(ref, cur, infer_contract(ref))
    assert report.alerts == []
    tested = [f for f in report.findings if f.column == "score"]
    assert tested == []


def test_categorical_drift():
    ref = _synthetic(3000)
    assert score_batch(ref, _synthetic(3000, seed=1), infer_contract(ref)).alerts == []
    cur = _synthetic(3000, seed=1, mix=(0.2, 0.3, 0.5))
    assert {(a.check, a.column) for a in score_batch(ref, cur, infer_contract(ref)).alerts} == {("drift", "grade")}


def test_lab_value_drift_of_one_code(reference, current, contract):
    rows = current.measurement_source_value == SBP
    current.loc[rows, "value_as_number"] += reference.loc[
        reference.measurement_source_value == SBP, "value_as_number"
    ].std()
    report = score_batch(reference, current, contract)
    assert ("lab_drift", f"value_as_number[{SBP}]", ALL) in keys(report)
    assert {a.check for a in report.alerts} == {"lab_drift"}


# ---- units --------------------------------------------------------------------------------------------------------


def test_unit_string_change_at_one_site(reference, current, contract):
    rows = (current.measurement_source_value == WEIGHT) & (current.site == "south")
    current.loc[rows, "value_as_number"] *= 2.2046
    current.loc[rows, "unit_source_value"] = "[lb_av]"
    report = score_batch(reference, current, contract)
    assert keys(report) == {("unit_change", f"unit_source_value[{WEIGHT}]", "south")}  # once, no side effects
    assert report.alerts[0].message == (
        "site south: body weight (29463-7) unit changed kg -> [lb_av] in 100% of rows, values x 2.2 (a weight "
        "conversion)"
    )
    assert report.alerts[0].severity == "critical"


def test_silent_scale_jump_same_unit_string(reference, current, contract):
    rows = current.measurement_source_value == WEIGHT
    current.loc[rows, "value_as_number"] *= 2.2046  # pounds, still labelled kg
    report = score_batch(reference, current, contract)
    assert ("unit_change", f"value_as_number[{WEIGHT}]", ALL) in keys(report)
    message = next(a.message for a in report.alerts if a.check == "unit_change")
    assert "while unit still 'kg'" in message and "kg -> [lb_av]" in message


def test_small_real_change_is_not_a_unit_change(reference, current, contract):
    rows = current.measurement_source_value == WEIGHT
    current.loc[rows, "value_as_number"] *= 1.05
    assert not [a for a in score_batch(reference, current, contract).alerts if a.check == "unit_change"]


# ---- codes --------------------------------------------------------------------------------------------------------


def test_new_and_unmapped_codes(reference, current, contract):
    rows = current.index[:100]
    current.loc[rows, "measurement_source_value"] = [f"LOCAL-{i % 7}" for i in range(100)]
    report = score_batch(reference, current, contract)
    assert ("new_codes", "measurement_source_value", ALL) in keys(report)
    approved = set(reference.measurement_source_value)
    report = score_batch(reference, current, contract, approved=approved)
    assert ("unmapped_codes", "measurement_source_value", ALL) in keys(report)
    assert not any(a.check in ("new_codes", "drift") and a.column == "measurement_source_value" for a in report.alerts)
    clean = score_batch(reference, reference.sample(frac=1, random_state=2), contract, approved=lambda c: c in approved)
    assert clean.alerts == []


ICD9 = ["250.00", "401.9", "428.0", "486", "V58.61", "496", "272.4", "530.81"]
ICD10 = ["E11.9", "I10", "I50.9", "J18.9", "Z79.01", "J44.9", "E78.5", "K21.9"]


def _diagnoses(codes: list[str], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"site": rng.choice(["A", "B"], n), "dx_code": rng.choice(codes, n)})


def test_icd9_to_icd10_switch_at_one_site():
    ref, cur = _diagnoses(ICD9, 1500, 0), _diagnoses(ICD9, 1500, 1)
    contract = infer_contract(ref)
    assert contract.column("dx_code").kind == "code"
    assert score_batch(ref, cur, contract).alerts == []
    b = cur.site == "B"
    cur.loc[b, "dx_code"] = cur.loc[b, "dx_code"].map(dict(zip(ICD9, ICD10)))
    report = score_batch(ref, cur, contract)
    assert keys(report) == {("code_system", "dx_code", "B")}
    assert report.alerts[0].message == "site B: dx_code code system switched ICD-9 -> ICD-10 in 100% of rows"


def _notes(topic: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = {
        "heart": "chest pain palpitations dyspnea angina troponin murmur syncope edema",
        "skin": "rash eczema pruritus lesion psoriasis dermatitis blister acne",
    }[topic].split()
    return pd.DataFrame({"note": [" ".join(rng.choice(words, 6)) + " reported by patient today" for _ in range(n)]})


def test_text_drift_with_an_injected_encoder():
    ref = _notes("heart", 300, 0)
    contract = infer_contract(ref)
    assert contract.column("note").kind == "text"
    encoder = HashingEncoder()
    quiet = score_batch(ref, _notes("heart", 300, 1), contract, encoder=encoder)
    assert quiet.alerts == []
    report = score_batch(ref, _notes("skin", 300, 1), contract, encoder=encoder)
    assert keys(report) == {("text_drift", "note", ALL)} and encoder.calls == 2


# ---- plausibility -------------------------------------------------------------------------------------------------


def test_values_outside_physiological_range(reference, current, contract):
    rows = current.index[current.measurement_source_value == SBP][:8]
    current.loc[rows, "value_as_number"] = 900.0
    report = score_batch(reference, current, contract)
    assert ("plausibility", f"value_as_number[{SBP}]", ALL) in keys(report)


def test_measurements_before_birth(reference, current, contract):
    current.loc[current.index[:30], "measurement_date"] = "1901-01-01"
    report = score_batch(reference, current, contract)
    assert ("plausibility", "measurement_date", ALL) in keys(report)
    assert "after birth" in next(a.message for a in report.alerts if a.check == "plausibility")


def test_sex_specific_codes():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"dx_code": rng.choice(["O80", "I10", "C61"], 400), "gender_source_value": "X"})
    ref["gender_source_value"] = np.where(ref.dx_code == "O80", "F", np.where(ref.dx_code == "C61", "M", "F"))
    cur = ref.copy()
    assert score_batch(ref, cur, infer_contract(ref)).alerts == []
    cur.loc[cur.dx_code == "O80", "gender_source_value"] = "M"
    report = score_batch(ref, cur, infer_contract(ref))
    assert ("plausibility", "dx_code", ALL) in keys(report)


def test_rules_can_be_switched_off(reference, current, contract):
    current.loc[current.index[:30], "measurement_date"] = "1901-01-01"
    rules = PlausibilityRules(value_ranges={}, sex_specific={}, birth_column="nope", death_column="nope")
    assert not any(a.check == "plausibility" for a in score_batch(reference, current, contract, rules=rules).alerts)


# ---- batch anomaly ------------------------------------------------------------------------------------------------


def test_batch_anomaly_needs_history_then_flags_an_odd_batch(measurements, contract):
    rng = np.random.default_rng(3)
    history = [
        profile_frame(measurements.sample(400, random_state=int(s)), contract) for s in rng.integers(0, 10**6, 12)
    ]
    normal = measurements.sample(400, random_state=99)
    odd = normal.copy()
    odd["value_as_number"] *= 1.3
    odd.loc[odd.index[:60], ["unit_source_value", "measurement_concept_id"]] = np.nan
    config = CheckConfig()

    def anomalies(batch, past):
        report = score_batch(measurements, batch, contract, history=past, config=config)
        return [f for f in report.findings if f.check == "batch_anomaly"]

    assert anomalies(odd, history[:5]) == []  # too little history: no verdict
    assert anomalies(normal, history) == []
    [finding] = anomalies(odd, history)
    assert finding.statistic > finding.threshold and finding.details["top_features"]
