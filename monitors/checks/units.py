"""Unit changes per lab code: the unit string mix moved, or values jumped by a known conversion factor
while the unit string stayed the same (a silent mg/dL -> mmol/L switch)."""

from __future__ import annotations

import math

from monitors.checks.base import Context, Finding, numeric_shift, pct, two_proportion_p
from monitors.checks.drift import code_name, dominant_unit, matched_lab_codes
from monitors.lab import closest_conversion, factor_text
from monitors.profile import PairProfile, SegmentProfile

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
    conversion = _named_conversion(before, pair, code, usual, new_unit, ctx)
    return [
        ctx.finding(
            "unit_change",
            f"{pair.unit}[{code}]",
            delta,
            ctx.config.unit_share,
            f"{code_name(code)} unit changed {usual or '(none)'} -> {new_unit or '(none)'} in {pct(share)} of rows"
            + (f", values {conversion['values']} (a {conversion['analytes']} conversion)" if conversion else ""),
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
                "conversion": conversion,
            },
        )
    ]


def _named_conversion(
    before: PairProfile, pair: PairProfile, code: str, old_unit: str | None, new_unit: str | None, ctx: Context
) -> dict | None:
    """When values in the new unit sit at a known conversion factor from the reference's values in the old unit
    (glucose mg/dL -> mmol/L: / 18.0), the change is named with its factor."""
    a, b = before.stats.get((code, old_unit)), pair.stats.get((code, new_unit))
    if a is None or b is None or old_unit == new_unit or a.n < MIN_CODE_ROWS or b.n < 3:
        return None
    m0, m1 = a.quantile(0.5), b.quantile(0.5)
    if m0 <= 0 or m1 <= 0:
        return None
    ratio = m1 / m0
    factor, src, dst, analytes = closest_conversion(ratio)
    if abs(math.log(ratio / factor)) > math.log(1 + ctx.config.scale_tolerance):
        return None
    return {
        "ratio": ratio,
        "factor": factor,
        "values": factor_text(factor),
        "analytes": analytes,
        "known": f"{src} -> {dst}",
    }


def _scale_jump(before: PairProfile, pair: PairProfile, code: str, ctx: Context) -> list[Finding]:
    unit = dominant_unit(before, code)
    a, b = before.stats.get((code, unit)), pair.stats.get((code, unit))
    if a is None or b is None or b.n < MIN_CODE_ROWS or a.n < MIN_CODE_ROWS:
        return []
    m0, m1 = a.quantile(0.5), b.quantile(0.5)
    if m0 <= 0 or m1 <= 0:
        return []
    ratio = m1 / m0
    factor, src, dst, analytes = closest_conversion(ratio)
    if abs(math.log(ratio / factor)) > math.log(1 + ctx.config.scale_tolerance):
        return []
    effect, p = numeric_shift(a, b)
    direction = f"{src} -> {dst} ({analytes})"
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
