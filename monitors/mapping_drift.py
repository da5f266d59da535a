"""Mapping drift: a local code whose data stopped agreeing with the target it was approved to map to.

A mapping approved last month goes stale when the source changes what a local code carries (the glucose
item now reports mmol/L; an item number is reused for another test). Per approved local code, compared
with the reference:

- unit property: a unit newly carried by the code whose LOINC PROPERTY contradicts the target's (mmol/L,
  a substance concentration, under a mass-concentration code);
- value jump: the code's values moved far (in reference SDs) while the feed's other codes did not, so the
  change is the code's, not the lab's or the patients'.

Returns evidence only; re-opening the review item is the caller's business (the service's decision path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitors.checks.base import numeric_shift
from monitors.contract import Contract
from monitors.lab import closest_conversion, factor_text, properties_agree, unit_property
from monitors.profile import ALL, NumericStats, PairProfile, Profile, merge_numeric, profile_frame

PROPERTY_NAMES = {
    "MCnc": "a mass concentration",
    "SCnc": "a substance concentration",
    "NCnc": "a number concentration",
    "CCnc": "a catalytic concentration",
    "ACnc": "an arbitrary concentration",
    "Fr": "a fraction",
}


@dataclass
class ApprovedMapping:
    """An approved local code -> target code, with what the target expects of the data."""

    code: str  # the local code as the feed writes it (item number, local test code)
    target: str  # e.g. the LOINC code "2345-7"
    property: str | None = None  # the target's LOINC PROPERTY: MCnc, SCnc, NCnc, CCnc, MFr ...
    units: list[str] = field(default_factory=list)  # the target's usual units, e.g. ["mg/dL"]


@dataclass
class MappingDriftConfig:
    min_rows: int = 10  # rows of the code in the batch before judging its units
    jump_min_rows: int = 20  # values of a code on each side before judging a jump
    unit_share: float = 0.10  # rise in the share of the code's rows in a contradicting unit
    jump_sd: float = 1.0  # the code's values moved at least this many reference SDs (Wasserstein)...
    neighbours_sd: float = 0.25  # ...while the other codes moved at most this much, at the median
    alpha: float = 0.001  # significance of the jump, Bonferroni across the codes judged


@dataclass
class MappingDriftEvidence:
    """Why one approved mapping may be stale: readable reasons plus the figures behind them."""

    code: str
    target: str
    segment: str  # "*": the whole batch
    severity: str  # "critical": the unit contradicts the target; "warning": the values jumped
    reasons: list[str]
    figures: dict


def detect_mapping_drift(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Profile,
    contract: Contract,
    mappings: dict[str, ApprovedMapping] | list[ApprovedMapping],
    *,
    segment: str | None = None,
    config: MappingDriftConfig | None = None,
) -> list[MappingDriftEvidence]:
    """Evidence per approved local code whose batch data contradicts its target, whole batch first; a code seen
    only in some segments is reported for each of them."""
    config = config or MappingDriftConfig()
    if isinstance(mappings, list):
        mappings = {m.code: m for m in mappings}
    ref = reference if isinstance(reference, Profile) else profile_frame(reference, contract, segment)
    cur = current if isinstance(current, Profile) else profile_frame(current, contract, segment)
    found: dict[str, MappingDriftEvidence] = {}
    keys = [ALL] + (sorted(cur.segments) if cur.segment_column else [])
    for key in keys:
        before, now = ref.segment(key), cur.segment(key)
        if before is None or now is None:
            continue
        for pair in now.pairs:
            old = next(
                (p for p in before.pairs if (p.value, p.unit, p.code) == (pair.value, pair.unit, pair.code)), None
            )
            if old is None:
                continue
            for evidence in _judge_pair(old, pair, mappings, key, config):
                found.setdefault(evidence.code, evidence)  # the whole batch's evidence over a segment's
    return list(found.values())


def _judge_pair(
    before: PairProfile, now: PairProfile, mappings: dict[str, ApprovedMapping], segment: str, config
) -> list[MappingDriftEvidence]:
    shifts = _code_shifts(before, now, config)
    out = []
    for code, mapping in mappings.items():
        rows = sum(now.units(code).values())
        if rows < config.min_rows:
            continue
        reasons, figures, severity = [], {"rows": rows, "value_column": now.value, "unit_column": now.unit}, "warning"
        contradiction = _unit_contradiction(before, now, code, mapping, config)
        if contradiction:
            reasons.append(contradiction[0])
            figures.update(contradiction[1])
            severity = "critical"
        jump = _value_jump(code, shifts, config)
        if jump:
            reasons.append(jump[0])
            figures.update(jump[1])
        if reasons:
            out.append(MappingDriftEvidence(code, mapping.target, segment, severity, reasons, figures))
    return out


def _unit_contradiction(before: PairProfile, now: PairProfile, code: str, mapping: ApprovedMapping, config):
    """The unit newly carried by the code whose property contradicts the target's."""
    expected = mapping.property or _property_of(mapping.units)
    if expected is None:
        return None
    old, new = before.units(code), now.units(code)
    n0, n1 = sum(old.values()) or 1, sum(new.values())
    for unit, count in sorted(new.items(), key=lambda kv: -kv[1]):
        prop = unit_property(unit)
        rise = count / n1 - old.get(unit, 0) / n0
        if prop is None or properties_agree(prop, expected) or rise < config.unit_share:
            continue
        usual = max(old, key=old.get) if old else None
        text = (
            f"{code} now reports {unit!r} in {count / n1:.0%} of rows (was {usual!r}): "
            f"{PROPERTY_NAMES.get(prop, prop)} ({prop}), but {mapping.target} is "
            f"{PROPERTY_NAMES.get(expected, expected)} ({expected})"
        )
        conversion = _conversion(before, now, code, usual, unit)
        if conversion:
            text += f"; values {conversion}"
        return text, {"unit": unit, "unit_property": prop, "target_property": expected, "unit_share": count / n1}
    return None


def _property_of(units: list[str]) -> str | None:
    props = {unit_property(u) for u in units} - {None}
    return props.pop() if len(props) == 1 else None


def _conversion(before: PairProfile, now: PairProfile, code: str, old_unit: str | None, new_unit: str) -> str | None:
    a, b = before.stats.get((code, old_unit)), now.stats.get((code, new_unit))
    if a is None or b is None or a.quantile(0.5) <= 0 or b.quantile(0.5) <= 0:
        return None
    ratio = b.quantile(0.5) / a.quantile(0.5)
    factor, _, _, analytes = closest_conversion(ratio)
    if abs(np.log(ratio / factor)) > np.log(1.08):
        return None
    return f"{factor_text(factor)} (a {analytes} conversion)"


def _all_values(pair: PairProfile, code: str) -> NumericStats | None:
    out = None
    for (c, _), stats in pair.stats.items():
        if c == code:
            out = merge_numeric(out, stats)
    return out


def _code_shifts(before: PairProfile, now: PairProfile, config) -> dict[str, tuple[float, float, float, float]]:
    """code -> (shift in reference SDs, p, median before, median now), over all of the code's values."""
    out = {}
    for code in before.codes() & now.codes():
        a, b = _all_values(before, code), _all_values(now, code)
        if a is None or b is None or min(a.n, b.n) < config.jump_min_rows or a.std == 0:
            continue
        effect, p = numeric_shift(a, b)
        out[code] = (effect, p, a.quantile(0.5), b.quantile(0.5))
    return out


def _value_jump(code: str, shifts: dict, config):
    if code not in shifts or len(shifts) < 3:
        return None  # without neighbours a jump cannot be told from a change of the whole lab
    effect, p, m0, m1 = shifts[code]
    others = float(np.median([s[0] for c, s in shifts.items() if c != code]))
    if effect < config.jump_sd or p > config.alpha / len(shifts) or others > config.neighbours_sd:
        return None
    text = (
        f"{code}'s values moved {effect:.1f} reference SDs (median {m0:.4g} -> {m1:.4g}) while the feed's other "
        f"{len(shifts) - 1} codes moved {others:.2f} at the median"
    )
    return text, {"shift_sd": effect, "p_value": p, "median_reference": m0, "median_current": m1, "others_sd": others}
