"""Conformance: schema (new / removed / renamed columns), dtype, value format, closed value sets."""

from __future__ import annotations

import difflib

from scipy import stats

from monitors.checks.base import Context, Finding, has_rows, mix_predicted_change, pct
from monitors.profile import ColumnProfile, SegmentProfile


def dtype_family(dtype: str) -> str:
    families = {_one_family(d) for d in dtype.split("|")}
    return families.pop() if len(families) == 1 else "mixed"


def _one_family(dtype: str) -> str:
    if dtype.startswith(("int", "uint", "float", "Int", "Float", "UInt")):
        return "number"  # int64 <-> float64 flips with the presence of nulls: not a change
    if dtype.startswith("datetime"):
        return "datetime"
    if dtype in ("bool", "boolean"):
        return "bool"
    return "text"


def check_schema(cur: SegmentProfile, ctx: Context) -> list[Finding]:
    """Batch-level: columns the contract has and the batch lacks, and the reverse; a pair of those that look
    like the same data under a new name is reported once, as a rename."""
    expected = ctx.contract.names()
    removed = [c for c in expected if c not in cur.columns]
    added = [c for c in cur.columns if c not in expected]
    out = []
    for old, new in _renames(removed, added, cur, ctx):
        removed.remove(old)
        added.remove(new)
        out.append(
            ctx.finding(
                "schema", old, 1, 1, f"column {old} renamed to {new}?", severity="critical", details={"renamed_to": new}
            )
        )
    for name in removed:
        out.append(ctx.finding("schema", name, 1, 1, f"column {name} removed from the feed", severity="critical"))
    for name in added:
        out.append(ctx.finding("schema", name, 1, 1, f"new column {name} not in the contract", severity="warning"))
    return out


def _renames(removed: list[str], added: list[str], cur: SegmentProfile, ctx: Context) -> list[tuple[str, str]]:
    pairs = []
    for old in removed:
        spec = ctx.contract.column(old)
        candidates = [
            (difflib.SequenceMatcher(None, old.lower(), new.lower()).ratio(), new)
            for new in added
            if new not in {n for _, n in pairs} and dtype_family(cur.columns[new].dtype) == _one_family(spec.dtype)
        ]
        best = max(candidates, default=None)
        if best and best[0] >= 0.6:
            pairs.append((old, best[1]))
    return pairs


def check_dtypes(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    out = []
    for name, column in cur.columns.items():
        spec = ctx.contract.column(name)
        if spec is None or column.count == column.nulls:
            continue
        was, now = _one_family(spec.dtype), dtype_family(column.dtype)
        if spec.kind == "numeric" and was == "text" and now == "number":
            continue  # results written as text ("<0.5", "NEG"): a batch of plain numbers reads as numbers
        if was != now:
            out.append(
                ctx.finding(
                    "dtype",
                    name,
                    1,
                    1,
                    f"{name} type changed {spec.dtype} -> {column.dtype}",
                    severity="critical" if was == "number" else "warning",
                    details={"reference_dtype": spec.dtype, "current_dtype": column.dtype},
                )
            )
    return out


def check_formats(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    """Values in the column's type that stopped parsing, and value shapes (9999-9, A99.9) never seen before."""
    if not has_rows(cur, ctx.config):
        return []
    out = []
    for name, column in cur.columns.items():
        before = ref.columns.get(name)
        spec = ctx.contract.column(name)
        if before is None or spec is None:
            continue
        if spec.kind in ("numeric", "date"):
            found = _unparsed(before, column, name, spec, ctx)
            for finding in found:  # a result column's non-numeric share also moves with the codes' mix
                finding.details["mix_predicted_change"] = mix_predicted_change(ref, cur, name, ctx.contract)
            out.extend(found)
        if spec.kind in ("categorical", "unit") and before.shapes and column.shapes:
            out.extend(_novel_shapes(before, column, name, ctx))
        if spec.allowed is not None and column.values:
            out.extend(_not_allowed(column, name, set(spec.allowed), ctx))
    return out


def _present(column: ColumnProfile) -> int:
    return column.count - column.nulls


def _unparsed(before: ColumnProfile, column: ColumnProfile, name: str, spec, ctx: Context) -> list[Finding]:
    n0, n1 = _present(before), _present(column)
    if n1 == 0:
        return []
    r0, r1 = (before.unparsed / n0 if n0 else 0.0), column.unparsed / n1
    what = "are not numbers" if spec.kind == "numeric" else f"do not parse as dates ({spec.date_format or 'ISO'})"
    p = float(stats.binomtest(column.unparsed, n1, max(r0, 1 / max(n0, 1))).pvalue) if column.unparsed else 1.0
    return [
        ctx.finding(
            "format",
            name,
            r1 - r0,
            ctx.config.unparsed_delta,
            f"{pct(r1)} of {name} values {what} (reference {pct(r0)})",
            critical=0.2,
            p_value=p,
            exceeded=r1 - r0 >= ctx.config.unparsed_delta,
        )
    ]


def good_turing_unseen(counts: dict[str, int]) -> float:
    """Probability that the next value is one never seen: share of values seen exactly once (Good-Turing)."""
    total = sum(counts.values())
    return sum(1 for c in counts.values() if c == 1) / total if total else 0.0


def novelty(before: dict[str, int], now: dict[str, int]) -> tuple[int, int, float, float]:
    """(novel rows, rows, novel share, p-value vs the reference's Good-Turing unseen rate)."""
    rows = sum(now.values())
    novel = sum(c for k, c in now.items() if k not in before)
    if rows == 0:
        return 0, 0, 0.0, 1.0
    baseline = max(good_turing_unseen(before), 1 / max(sum(before.values()), 1))
    p = float(stats.binom.sf(novel - 1, rows, baseline)) if novel else 1.0
    return novel, rows, novel / rows, p


def _novel_shapes(before: ColumnProfile, column: ColumnProfile, name: str, ctx: Context) -> list[Finding]:
    novel, rows, share, p = novelty(before.shapes, column.shapes)
    top_new = sorted(((c, k) for k, c in column.shapes.items() if k not in before.shapes), reverse=True)[:3]
    examples = ", ".join(k for _, k in top_new)
    return [
        ctx.finding(
            "format",
            name,
            share,
            ctx.config.format_delta,
            f"{pct(share)} of {name} values have a new format ({examples})",
            critical=0.5,
            p_value=p,
            details={"new_shapes": [k for _, k in top_new]},
        )
    ]


def _not_allowed(column: ColumnProfile, name: str, allowed: set[str], ctx: Context) -> list[Finding]:
    bad = {k: c for k, c in column.values.items() if k not in allowed}
    rows = sum(column.values.values()) + column.other
    share = (sum(bad.values()) + column.other) / rows if rows else 0.0
    examples = ", ".join(sorted(bad, key=bad.get, reverse=True)[:3])
    return [
        ctx.finding(
            "allowed_values",
            name,
            share,
            ctx.config.allowed_share,
            f"{pct(share)} of {name} values outside the allowed set ({examples})",
            critical=0.2,
            exceeded=share >= ctx.config.allowed_share and sum(bad.values()) >= 5,
            details={"examples": examples},
        )
    ]
