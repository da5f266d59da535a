"""Completeness: a field going missing, and bursts of duplicate rows."""

from __future__ import annotations

from monitors.checks.base import Context, Finding, has_rows, mix_predicted_change, pct, two_proportion_p
from monitors.profile import SegmentProfile


def check_completeness(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    """Missing-rate change: two-proportion z-test, reported only if >= 5 points AND significant after BH."""
    if not has_rows(cur, ctx.config):
        return []
    out = []
    for name, column in cur.columns.items():
        before = ref.columns.get(name)
        if before is None:
            continue  # a new column is conformance's business
        p0, p1 = before.null_rate, column.null_rate
        delta = p1 - p0
        p = two_proportion_p(before.nulls, before.count, column.nulls, column.count)
        went = "entirely missing" if p1 == 1.0 and p0 < 1.0 else f"missing in {pct(p1)} of rows (was {pct(p0)})"
        out.append(
            ctx.finding(
                "completeness",
                name,
                delta,
                ctx.config.completeness_delta,
                f"{name} {went}",
                critical=ctx.config.completeness_critical,
                p_value=p,
                exceeded=delta >= ctx.config.completeness_delta,
                details={
                    "null_rate_reference": p0,
                    "null_rate_current": p1,
                    "rows": column.count,
                    "mix_predicted_change": mix_predicted_change(ref, cur, name, ctx.contract),
                },
            )
        )
    return out


def check_duplicates(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    if not has_rows(cur, ctx.config):
        return []
    r0, r1 = ref.duplicate_rate, cur.duplicate_rate
    x0, x1 = round(r0 * ref.n_rows), round(r1 * cur.n_rows)
    return [
        ctx.finding(
            "duplicates",
            "*",
            r1 - r0,
            ctx.config.duplicate_delta,
            f"{pct(r1)} of rows are duplicates (reference {pct(r0)})",
            critical=0.2,
            p_value=two_proportion_p(x0, ref.n_rows, x1, cur.n_rows),
            exceeded=r1 - r0 >= ctx.config.duplicate_delta,
            details={"duplicate_rate_reference": r0, "duplicate_rate_current": r1},
        )
    ]
