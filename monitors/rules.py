"""Plausibility rules (Kahn framework / OHDSI DQD 'plausibility'): evaluated row by row while profiling.

Each rule yields (rows checked, rows violating) so rule results merge across batches like any other count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitors.lab import parse_results

# Wide physiological limits (not reference ranges): a value outside is an error, not a sick patient.
DEFAULT_VALUE_RANGES: dict[str, tuple[float, float, str | None]] = {
    "2339-0": (10.0, 2000.0, "mg/dL"),  # glucose, blood
    "2345-7": (10.0, 2000.0, "mg/dL"),  # glucose, serum/plasma
    "38483-4": (0.05, 40.0, "mg/dL"),  # creatinine, blood
    "2160-0": (0.05, 40.0, "mg/dL"),  # creatinine, serum/plasma
    "718-7": (1.0, 30.0, "g/dL"),  # hemoglobin
    "8480-6": (30.0, 300.0, "mm[Hg]"),  # systolic blood pressure
    "8462-4": (10.0, 200.0, "mm[Hg]"),  # diastolic blood pressure
    "8867-4": (10.0, 350.0, "/min"),  # heart rate
    "29463-7": (0.2, 650.0, "kg"),  # body weight
    "8302-2": (20.0, 275.0, "cm"),  # body height
}
# Codes that only make sense for one sex (SNOMED / ICD-10 examples; extend per site).
DEFAULT_SEX_SPECIFIC: dict[str, str] = {
    "O80": "F",  # ICD-10 encounter for full-term uncomplicated delivery
    "Z34.00": "F",  # supervision of normal first pregnancy
    "N40.0": "M",  # benign prostatic hyperplasia
    "C61": "M",  # malignant neoplasm of prostate
    "72892002": "F",  # SNOMED normal pregnancy
    "266569009": "M",  # SNOMED benign prostatic hyperplasia
}


@dataclass
class PlausibilityRules:
    """Which rows are implausible. Columns that a batch lacks make their rule inapplicable (0 checked)."""

    # code -> (low, high, unit or None); checked on value column of each value+unit pair, same unit only
    value_ranges: dict[str, tuple[float, float, str | None]] = field(default_factory=lambda: dict(DEFAULT_VALUE_RANGES))
    sex_specific: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEX_SPECIFIC))
    sex_column: str = "gender_source_value"
    birth_column: str = "birth_datetime"
    death_column: str = "death_datetime"
    event_date_columns: list[str] | None = None  # None: every date column except birth/death

    def to_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def evaluate_rules(
    frame: pd.DataFrame,
    rules: PlausibilityRules,
    pairs: list[tuple[str, str, str]],
    date_columns: list[str],
    code_columns: list[str],
) -> dict[str, list[int]]:
    """rule name -> [checked, violated] for this frame."""
    out: dict[str, list[int]] = {}
    for value, unit, code in pairs:
        if {value, unit, code} <= set(frame.columns):
            out.update(_ranges(frame, rules, value, unit, code))
    out.update(_life_dates(frame, rules, date_columns))
    for column in code_columns:
        if column in frame.columns and rules.sex_column in frame.columns:
            out.update(_sex_specific(frame, rules, column))
    return out


def _ranges(frame: pd.DataFrame, rules: PlausibilityRules, value: str, unit: str, code: str) -> dict[str, list[int]]:
    out = {}
    codes = frame[code].astype(str)
    values = pd.Series(parse_results(frame[value])[0], index=frame.index)
    for wanted, (low, high, wanted_unit) in rules.value_ranges.items():
        mask = (codes == wanted) & values.notna()
        if wanted_unit is not None:  # a different unit is the unit check's business, not a range violation
            mask &= frame[unit].astype(str) == wanted_unit
        checked = int(mask.sum())
        if checked:
            bad = int(((values[mask] < low) | (values[mask] > high)).sum())
            out[f"value_range:{value}[{wanted}]"] = [checked, bad]
    return out


def _life_dates(frame: pd.DataFrame, rules: PlausibilityRules, date_columns: list[str]) -> dict[str, list[int]]:
    out = {}
    events = rules.event_date_columns or [c for c in date_columns if c not in (rules.birth_column, rules.death_column)]
    for bound, name, after in ((rules.birth_column, "after_birth", True), (rules.death_column, "before_death", False)):
        if bound not in frame.columns:
            continue
        limit = _dates(frame[bound])
        for column in (c for c in events if c in frame.columns):
            when = _dates(frame[column])
            both = when.notna() & limit.notna()
            # date-level comparison: an event on the day of birth is plausible whatever the clock says
            wrong = (
                (when.dt.normalize() < limit.dt.normalize()) if after else (when.dt.normalize() > limit.dt.normalize())
            )
            out[f"{name}:{column}"] = [int(both.sum()), int((wrong & both).sum())]
    return out


def _dates(series: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_localize(None)


def _sex_specific(frame: pd.DataFrame, rules: PlausibilityRules, column: str) -> dict[str, list[int]]:
    codes = frame[column].astype(str)
    sex = frame[rules.sex_column].astype(str).str.upper().str[:1]
    wanted = pd.Series(rules.sex_specific)
    expected = codes.map(wanted)
    checked = expected.notna() & sex.isin(["M", "F"])
    bad = checked & (expected != sex)
    return {f"sex_specific:{column}": [int(checked.sum()), int(np.asarray(bad).sum())]}
