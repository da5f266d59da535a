"""Distribution drift with effect-size floors: numeric (Wasserstein / reference SD), categorical (PSI, JS),
and per lab code (value distribution of one LOINC code in its usual unit).

p-values alone flag 0.02-SD noise once n is large; the floors keep big batches quiet, and BH across
columns x segments keeps many columns quiet. Distances are computed on the mergeable sketches rather than
with Evidently's stattests on raw rows, which need both full frames in memory (see benchmarks/drift.py
for the speed difference).
"""

from __future__ import annotations

from collections.abc import Iterator

from monitors.checks.base import Context, Finding, categorical_shift, has_rows, numeric_shift
from monitors.profile import PairProfile, SegmentProfile


def check_drift(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    if not has_rows(cur, ctx.config):
        return []
    out = []
    for name, column in cur.columns.items():
        spec, before = ctx.contract.column(name), ref.columns.get(name)
        if spec is None or before is None:
            continue
        if spec.kind == "numeric" and column.numeric and before.numeric and column.numeric.n >= ctx.config.min_rows:
            out.append(_numeric(name, before.numeric, column.numeric, ctx))
        elif spec.kind in ("categorical", "code") and column.values and before.values:
            out.append(_categorical(name, before.values, column.values, ctx))
    return out


def _numeric(name: str, before, now, ctx: Context) -> Finding:
    effect, p = numeric_shift(before, now)
    direction = "up" if now.mean >= before.mean else "down"
    return ctx.finding(
        "drift",
        name,
        effect,
        ctx.config.numeric_drift,
        f"{name} distribution shifted {direction} by {effect:.2f} reference SDs (Wasserstein; mean "
        f"{before.mean:.4g} -> {now.mean:.4g})",
        critical=ctx.config.numeric_critical,
        p_value=p,
        details={"mean_reference": before.mean, "mean_current": now.mean, "median_current": now.quantile(0.5)},
    )


def _categorical(name: str, before: dict, now: dict, ctx: Context) -> Finding:
    psi, js, p = categorical_shift(before, now)
    total_b, total_n = sum(before.values()), sum(now.values())
    moved = sorted(set(before) | set(now), key=lambda k: -abs(now.get(k, 0) / total_n - before.get(k, 0) / total_b))
    top = moved[0] if moved else ""
    return ctx.finding(
        "drift",
        name,
        psi,
        ctx.config.categorical_psi,
        f"{name} category mix shifted (PSI {psi:.2f}, JS {js:.2f}); largest change {top!r} "
        f"{before.get(top, 0) / total_b:.0%} -> {now.get(top, 0) / total_n:.0%}",
        critical=ctx.config.categorical_critical,
        p_value=p,
        details={"psi": psi, "jensen_shannon": js},
    )


def dominant_unit(pair: PairProfile, code: str) -> str | None:
    units = pair.units(code)
    return max(units, key=units.get) if units else None


def matched_lab_codes(
    ref: SegmentProfile, cur: SegmentProfile, limit: int = 200
) -> Iterator[tuple[PairProfile, PairProfile, str]]:
    """(reference pair, current pair, code) for the lab codes both sides saw in the same value+unit pair: the
    `limit` codes carrying most of the batch's rows, so the tests (and their BH correction) go where the
    volume is."""
    reference = {(p.value, p.unit, p.code): p for p in ref.pairs}
    for pair in cur.pairs:
        before = reference.get((pair.value, pair.unit, pair.code))
        if before is None:
            continue
        volume: dict[str, int] = {}
        for (code, _), n in pair.counts.items():
            volume[code] = volume.get(code, 0) + n
        shared = sorted(pair.codes() & before.codes(), key=lambda c: (-volume.get(c, 0), c))[:limit]
        yield from ((before, pair, code) for code in sorted(shared))


def check_lab_drift(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    """Per lab code: is this code's value distribution (in its reference unit) different?"""
    out = []
    for before, pair, code in matched_lab_codes(ref, cur):
        unit = dominant_unit(before, code)
        a, b = before.stats.get((code, unit)), pair.stats.get((code, unit))
        if a is None or b is None or b.n < ctx.config.min_rows or a.n < ctx.config.min_rows or a.std == 0:
            continue
        effect, p = numeric_shift(a, b)
        out.append(
            ctx.finding(
                "lab_drift",
                f"{pair.value}[{code}]",
                effect,
                ctx.config.lab_drift,
                f"{code_name(code)} values ({unit}) shifted by {effect:.2f} reference SDs (mean {a.mean:.4g} -> "
                f"{b.mean:.4g}, n={b.n})",
                critical=1.0,
                p_value=p,
                details={"code": code, "unit": unit, "mean_reference": a.mean, "mean_current": b.mean},
            )
        )
    return out


LAB_NAMES = {
    "2339-0": "glucose (2339-0)",
    "2345-7": "glucose (2345-7)",
    "38483-4": "creatinine (38483-4)",
    "2160-0": "creatinine (2160-0)",
    "718-7": "hemoglobin (718-7)",
    "8480-6": "systolic BP (8480-6)",
    "8462-4": "diastolic BP (8462-4)",
    "2093-3": "cholesterol (2093-3)",
    "29463-7": "body weight (29463-7)",
    "8302-2": "body height (8302-2)",
}


def code_name(code: str) -> str:
    return LAB_NAMES.get(code, f"code {code}")
