"""Plausibility (Kahn / OHDSI DQD): values outside physiological ranges, events before birth or after death,
sex-specific codes on the other sex. Rules are evaluated while profiling (monitors.rules); here the rates
are compared with the reference's. A rule violation is an error whatever the sample size, so these are
rule findings (rate floor + a minimum count), outside the Benjamini-Hochberg family."""

from __future__ import annotations

from monitors.checks.base import Context, Finding, has_rows, pct
from monitors.profile import SegmentProfile

MIN_VIOLATIONS = 3


def check_plausibility(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    if not has_rows(cur, ctx.config):
        return []
    out = []
    for rule, (checked, violated) in sorted(cur.rules.items()):
        if checked == 0:
            continue
        n0, x0 = ref.rules.get(rule, [0, 0])
        r0, r1 = (x0 / n0 if n0 else 0.0), violated / checked
        kind, column = rule.split(":", 1)
        floor = ctx.config.plausibility_rate
        out.append(
            ctx.finding(
                "plausibility",
                column,
                r1 - r0,
                floor,
                f"{pct(r1)} of {column} rows fail {kind.replace('_', ' ')} "
                f"(reference {pct(r0)}; {violated} of {checked})",
                critical=0.1,
                exceeded=r1 - r0 >= floor and violated >= MIN_VIOLATIONS,
                details={"rule": rule, "violated": violated, "checked": checked},
            )
        )
    return out
