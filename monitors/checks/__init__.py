"""Check families, one module each; `run_checks` runs them all over every segment and `finalise` keeps
the findings worth a human's attention: effect size over its floor AND significant after Benjamini-Hochberg
across every test of the batch, with root causes reported once (see `suppress_explained`)."""

from __future__ import annotations

from monitors.checks.anomaly import check_batch_anomaly
from monitors.checks.base import CheckConfig, Context, Finding, benjamini_hochberg
from monitors.checks.codes import check_codes, check_text_drift
from monitors.checks.completeness import check_completeness, check_duplicates
from monitors.checks.conformance import check_dtypes, check_formats, check_schema
from monitors.checks.drift import check_drift, check_lab_drift
from monitors.checks.plausibility import check_plausibility
from monitors.checks.units import check_units
from monitors.profile import ALL, Profile

__all__ = ["CheckConfig", "Context", "Finding", "run_checks", "finalise", "SEGMENT_CHECKS"]

SEGMENT_CHECKS = (
    check_completeness,
    check_duplicates,
    check_formats,
    check_drift,
    check_lab_drift,
    check_units,
    check_codes,
    check_text_drift,
    check_plausibility,
)


def run_checks(
    reference: Profile,
    current: Profile,
    contract,
    config: CheckConfig | None = None,
    approved=None,
    encoder=None,
    history: list[Profile] | None = None,
) -> list[Finding]:
    """Every tested finding (before `finalise`), for the whole batch and for each segment in it."""
    config = config or CheckConfig()
    ref_all, cur_all = reference.overall(), current.overall()
    base = dict(
        contract=contract,
        config=config,
        segment_column=current.segment_column,
        approved=approved,
        encoder=encoder,
        reference_all=ref_all,
    )
    whole = Context(segment=ALL, **base)
    out = check_schema(cur_all, whole) + check_dtypes(ref_all, cur_all, whole)
    out += check_batch_anomaly(history or [], current, whole)
    keys = [ALL] + (sorted(current.segments) if current.segment_column else [])
    for key in keys:
        ctx = Context(segment=key, **base)
        cur = cur_all if key == ALL else current.segments[key]
        ref = ref_all if key == ALL else reference.segments.get(key)
        if ref is None:
            out.append(
                ctx.finding(
                    "new_segment",
                    "*",
                    cur.n_rows,
                    0,
                    "segment not in the reference; compared with all reference rows",
                    severity="info",
                )
            )
            ref = ref_all
        for check in SEGMENT_CHECKS:
            out.extend(check(ref, cur, ctx))
    return out


def finalise(findings: list[Finding], config: CheckConfig | None = None, contract=None) -> list[Finding]:
    """Effect over its floor AND (for statistical tests) BH q <= fdr; then root causes, case mix and segments
    roll up."""
    config = config or CheckConfig()
    tested = [f for f in findings if f.p_value is not None]
    for finding, q in zip(tested, benjamini_hochberg([f.p_value for f in tested])):
        finding.q_value = float(q)
    kept = [f for f in findings if f.exceeded and (f.q_value is None or f.q_value <= config.fdr)]
    kept = fold_case_mix(suppress_explained(kept), contract)
    return roll_up_segments(kept, findings + [f for f in kept if f.check == "case_mix"])


PER_ANALYTE = ("lab_drift", "unit_change")


def _rate_moved_with_mix(finding: Finding) -> bool:
    """A completeness or non-numeric-share change of a result or unit column that the codes' new mix predicts
    (within half the floor), from each code's own rate in the reference."""
    predicted = finding.details.get("mix_predicted_change")
    if finding.check not in ("completeness", "format") or predicted is None:
        return False
    return abs(finding.statistic - predicted) < finding.threshold / 2


def fold_case_mix(findings: list[Finding], contract) -> list[Finding]:
    """Case mix is not drift. In a segment where column drift is seen (the codes' mix, or a result or unit
    column as a whole) but no analyte's own values or units moved, other patients or other orders explain it:
    one low-severity `case_mix` finding replaces the column drift findings, and the changes in missing or
    non-numeric results that the new mix predicts, and lists them."""
    pairs = getattr(contract, "value_unit_pairs", None) or []
    if not pairs:
        return findings
    # which sites sent the rows is part of the mix, too (sites follow patients)
    explainable = {c for p in pairs for c in (p.code, p.value, p.unit)} | set(contract.segment_columns)
    out = list(findings)
    for segment in sorted({f.segment for f in findings}):
        mine = [f for f in findings if f.segment == segment]
        if any(f.check in PER_ANALYTE for f in mine):
            continue
        mixed = [f for f in mine if f.check == "drift" and f.column in explainable] + [
            f for f in mine if _rate_moved_with_mix(f) and abs(f.details["mix_predicted_change"]) >= f.threshold / 2
        ]
        if not mixed:
            continue
        folded = [f for f in mine if f.check == "drift" or _rate_moved_with_mix(f)]
        lead = next((f for f in mixed if f.column == pairs[0].code), mixed[0])
        moved = sorted({f.column for f in folded})
        out = [f for f in out if f not in folded]
        out.append(
            Finding(
                check="case_mix",
                column=pairs[0].code,
                segment=segment,
                severity="info",
                statistic=lead.statistic,
                threshold=lead.threshold,
                message=f"{lead.message.split(': ', 1)[0]}: the mix of {pairs[0].code} values changed (other "
                f"patients or other tests ordered) while no analyte's own values or units moved; columns that "
                f"moved with the mix: {', '.join(moved)}",
                details={"columns": moved, "statistics": {f.column: f.statistic for f in folded}},
                p_value=lead.p_value,
                q_value=lead.q_value,
            )
        )
    return out


def roll_up_segments(kept: list[Finding], tested: list[Finding]) -> list[Finding]:
    """One alert per problem, at the right level. When a (check, column) fires for all rows and for some
    sites: if every other site also shows the effect (over the floor, just not significant on its few
    rows) the problem is global and only the all-rows finding stays; otherwise it is local and only the
    sites' findings stay."""
    fired: dict[tuple[str, str], set[str]] = {}
    for f in kept:
        fired.setdefault((f.check, f.column), set()).add(f.segment)
    site_tests: dict[tuple[str, str], dict[str, Finding]] = {}
    for f in tested:
        if f.segment != ALL:
            site_tests.setdefault((f.check, f.column), {})[f.segment] = f
    global_keys = set()
    for key, segments in fired.items():
        sites = segments - {ALL}
        if ALL in segments and sites:
            others = [t for s, t in site_tests.get(key, {}).items() if s not in sites]
            if all(t.exceeded for t in others):
                global_keys.add(key)
    out = []
    for f in kept:
        key = (f.check, f.column)
        both = ALL in fired[key] and len(fired[key]) > 1
        if not both or (f.segment == ALL) == (key in global_keys):
            out.append(f)
    return out


def base_column(column: str) -> str:
    return column.split("[", 1)[0]


HIDES = {  # root-cause check -> consequence checks on the same column and segment
    "code_system": ("new_codes", "unmapped_codes", "drift", "format"),
    "new_codes": ("drift", "format"),
    "unmapped_codes": ("drift", "format"),
    "dtype": ("format", "drift", "completeness"),
}


def suppress_explained(findings: list[Finding]) -> list[Finding]:
    """Hear about it once: a root-cause finding hides its consequences.

    - a unit change of a lab code hides that code's value drift and range violations, and drift of the
      value and unit columns, in the same segment;
    - a code-system switch hides new/unmapped-code, drift and format findings of that column; new or unmapped
      codes hide drift and format findings; a dtype change hides format, drift and completeness findings.
    """
    hidden: set[tuple[str, str, str]] = set()  # (segment, check, column)
    for f in findings:
        if f.check == "unit_change":
            code, value, unit = f.details["code"], f.details["value_column"], f.details["unit_column"]
            hidden |= {
                (f.segment, "lab_drift", f"{value}[{code}]"),
                (f.segment, "plausibility", f"{value}[{code}]"),
                (f.segment, "drift", value),
                (f.segment, "drift", unit),
                (f.segment, "format", unit),
            }
        for check in HIDES.get(f.check, ()):
            hidden.add((f.segment, check, f.column))
    batch_wide = {(check, column) for segment, check, column in hidden if segment == ALL}
    return [
        f for f in findings if (f.segment, f.check, f.column) not in hidden and (f.check, f.column) not in batch_wide
    ]
