"""Unit changes per lab code: the unit string mix moved, or values jumped by a known conversion factor
while the unit string stayed the same (a silent mg/dL -> mmol/L switch)."""

from __future__ import annotations

import math

from monitors.checks.base import Context, Finding, numeric_shift, pct, two_proportion_p
from monitors.checks.drift import code_name, dominant_unit, matched_lab_codes
from monitors.profile import PairProfile, SegmentProfile

# factor by which values are multiplied when converting from the first unit to the second
KNOWN_FACTORS: list[tuple[float, str, str]] = [
    (1 / 18.016, "mg/dL", "mmol/L"),  # glucose
    (88.4, "mg/dL", "umol/L"),  # creatinine
    (10.0, "g/dL", "g/L"),  # hemoglobin, albumin
    (1 / 38.67, "mg/dL", "mmol/L (cholesterol)"),
    (1 / 88.57, "mg/dL", "mmol/L (triglycerides)"),
    (2.2046, "kg", "lb"),
    (1 / 2.54, "cm", "in"),
    (1000.0, "g", "mg"),
]
MIN_CODE_ROWS = 10


def check_units(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    out = []
    for before, pair, code in matched_lab_codes(ref, cur):
        out.extend(_unit_mix(before, pair, code, ctx))
        out.extend(_scale_jump(before, pair, code, ctx))
    return out


def _unit_mix(before: PairProfile, pair: PairProfile, code: str, ctx: Context) -> list[Finding]:
    old_units, new_units = before.units(code), pair.units(code)
    n0, n1 = sum(old_units.values()), sum(new_units.values())
    if n1 < MIN_CODE_ROWS:
        return []
    usual = dominant_unit(before, code)
    x0, x1 = n0 - old_units[usual], n1 - new_units.get(usual, 0)
    delta = x1 / n1 - x0 / n0
    others = {u: n for u, n in new_units.items() if u != usual}
    new_unit = max(others, key=others.get) if others else usual
    share = new_units.get(new_unit, 0) / n1
    return [
        ctx.finding(
            "unit_change",
            f"{pair.unit}[{code}]",
            delta,
            ctx.config.unit_share,
            f"{code_name(code)} unit changed {usual or '(none)'} -> {new_unit or '(none)'} in {pct(share)} of rows",
            critical=ctx.config.unit_critical,
            p_value=two_proportion_p(x0, n0, x1, n1),
            exceeded=delta >= ctx.config.unit_share,
            details={
                "code": code,
                "value_column": pair.value,
                "unit_column": pair.unit,
                "from_unit": usual,
                "to_unit": new_unit,
                "share": share,
                "rows": n1,
            },
        )
    ]


def _scale_jump(before: PairProfile, pair: PairProfile, code: str, ctx: Context) -> list[Finding]:
    unit = dominant_unit(before, code)
    a, b = before.stats.get((code, unit)), pair.stats.get((code, unit))
    if a is None or b is None or b.n < MIN_CODE_ROWS or a.n < MIN_CODE_ROWS:
        return []
    m0, m1 = a.quantile(0.5), b.quantile(0.5)
    if m0 <= 0 or m1 <= 0:
        return []
    ratio = m1 / m0
    match = _closest_factor(ratio)
    if match is None or abs(math.log(ratio / match[0])) > math.log(1 + ctx.config.scale_tolerance):
        return []
    effect, p = numeric_shift(a, b)
    direction = match[1]
    return [
        ctx.finding(
            "unit_change",
            f"{pair.value}[{code}]",
            effect,
            ctx.config.scale_min_shift,
            f"{code_name(code)} values scaled x{ratio:.3g} (median {m0:.4g} -> {m1:.4g}) while unit still "
            f"{unit!r}: looks like {direction}",
            critical=ctx.config.scale_min_shift,
            p_value=p,
            details={
                "code": code,
                "value_column": pair.value,
                "unit_column": pair.unit,
                "unit": unit,
                "ratio": ratio,
                "conversion": direction,
            },
        )
    ]


def _closest_factor(ratio: float) -> tuple[float, str] | None:
    """The known factor (or its inverse) nearest to `ratio` on a log scale, with the conversion it implies."""
    candidates = []
    for factor, src, dst in KNOWN_FACTORS:
        candidates.append((abs(math.log(ratio / factor)), factor, f"{src} -> {dst}"))
        candidates.append((abs(math.log(ratio * factor)), 1 / factor, f"{dst} -> {src}"))
    _, factor, label = min(candidates)
    return factor, label
