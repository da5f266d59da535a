"""Findings, thresholds and the small statistics every check family shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from monitors.profile import ALL, NumericStats, SegmentProfile

SEVERITIES = ("info", "warning", "critical")  # mildest first


def severity_rank(severity: str) -> int:
    """0 for info up to 2 for critical; -1 for anything else, so it sorts below every real severity."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass
class Finding:
    """One tested (check, column, segment). `exceeded`: the effect size passed its floor. Tests with a p-value
    become findings only if also significant after Benjamini-Hochberg across the whole batch (see `finalise`)."""

    check: str
    column: str
    segment: str
    severity: str
    statistic: float
    threshold: float
    message: str
    details: dict = field(default_factory=dict)
    p_value: float | None = None
    exceeded: bool = True
    q_value: float | None = None


@dataclass
class CheckConfig:
    """Effect-size floors (what is worth a human's attention) and the false-discovery rate."""

    fdr: float = 0.05  # Benjamini-Hochberg q across all tests of a batch (columns x segments x codes)
    min_rows: int = 30  # fewer rows in a segment: no statistical test there
    completeness_delta: float = 0.05  # missing-rate change, absolute (5 percentage points)
    completeness_critical: float = 0.20
    duplicate_delta: float = 0.02
    numeric_drift: float = 0.2  # Wasserstein distance / reference std
    numeric_critical: float = 1.0
    categorical_psi: float = 0.2  # population stability index; 0.2 is the usual 'significant shift'
    categorical_critical: float = 1.0
    lab_drift: float = 0.25  # per lab code, Wasserstein / reference std of that code's values
    unit_share: float = 0.10  # share of a code's rows in a unit the reference never used for it
    unit_critical: float = 0.50
    scale_tolerance: float = 0.08  # ratio of medians within 8% of a known conversion factor
    scale_min_shift: float = 0.5  # ...and the values moved by at least this many reference SDs
    unmapped_delta: float = 0.03
    new_code_share: float = 0.03
    code_format_delta: float = 0.10
    format_delta: float = 0.05
    unparsed_delta: float = 0.02
    allowed_share: float = 0.01
    plausibility_rate: float = 0.01
    embedding_mmd: float = 0.05  # MMD^2 floor on unit-norm sentence embeddings
    embedding_sample: int = 200
    embedding_permutations: int = 200
    anomaly_min_history: int = 10
    seed: int = 0


def segment_label(segment_column: str | None, segment: str) -> str:
    if segment == ALL:
        return "all rows"
    return f"{segment_column} {segment}" if segment_column else segment


def severity_for(statistic: float, floor: float, critical: float) -> str:
    if abs(statistic) >= critical:
        return "critical"
    return "warning" if abs(statistic) >= floor else "info"


def pct(x: float) -> str:
    return f"{100 * x:.0f}%" if abs(x) >= 0.01 or x == 0 else f"{100 * x:.1f}%"


# ---- tests --------------------------------------------------------------------------------------------------------


def two_proportion_p(x0: int, n0: int, x1: int, n1: int) -> float | None:
    """Two-sided pooled z-test of x0/n0 vs x1/n1. None where no outcome could be significant (an empty side, or
    no row, or every row, in the category on both sides): such a test is left out of the batch's
    Benjamini-Hochberg family (Tarone's rule), where a hundred analytes never seen in another unit would
    otherwise dilute the one that moved. Its effect is 0, so it is never a finding either."""
    if n0 == 0 or n1 == 0:
        return None
    pooled = (x0 + x1) / (n0 + n1)
    if pooled in (0.0, 1.0):
        return None
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    return float(2 * stats.norm.sf(abs(z)))


def benjamini_hochberg(p_values: list[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def wasserstein(a: NumericStats, b: NumericStats) -> float:
    va, wa = a.support()
    vb, wb = b.support()
    return float(stats.wasserstein_distance(va, vb, wa, wb))


def ks_test(
    a: NumericStats, b: NumericStats, n_a: float | None = None, n_b: float | None = None
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov from two sketches. Buckets act as ties, which only makes it conservative.
    `n_a`, `n_b`: effective sample sizes where rows are not independent (default: the row counts)."""
    va, wa = a.support()
    vb, wb = b.support()
    grid = np.union1d(va, vb)
    cdf_a = np.cumsum(np.bincount(np.searchsorted(grid, va), weights=wa, minlength=grid.size)) / wa.sum()
    cdf_b = np.cumsum(np.bincount(np.searchsorted(grid, vb), weights=wb, minlength=grid.size)) / wb.sum()
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    n_a, n_b = n_a or a.n, n_b or b.n
    effective = n_a * n_b / (n_a + n_b)
    return d, float(stats.kstwo.sf(d, max(1, round(effective))))


def welch_p(a: NumericStats, b: NumericStats, n_a: float | None = None, n_b: float | None = None) -> float:
    n_a, n_b = n_a or a.n, n_b or b.n
    if n_a < 2 or n_b < 2:
        return 1.0
    va, vb = a.std**2 / n_a, b.std**2 / n_b
    if va + vb == 0:
        return 1.0 if a.mean == b.mean else 0.0
    t = (b.mean - a.mean) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va**2 / (n_a - 1)) + (vb**2 / (n_b - 1)) or 1e-12)
    return float(2 * stats.t.sf(abs(t), df))


def numeric_shift(
    ref: NumericStats, cur: NumericStats, n_ref: float | None = None, n_cur: float | None = None
) -> tuple[float, float]:
    """(Wasserstein / reference std, p-value). p is the smaller of KS (shape) and Welch (mean), Bonferroni x2.
    `n_ref`, `n_cur`: effective sample sizes (rows that are repeated measurements of a few patients count less)."""
    scale = ref.std or abs(ref.mean) or 1.0
    _, p_ks = ks_test(ref, cur, n_ref, n_cur)
    return wasserstein(ref, cur) / scale, min(1.0, 2 * min(p_ks, welch_p(ref, cur, n_ref, n_cur)))


def categorical_shift(ref: dict[str, int], cur: dict[str, int]) -> tuple[float, float, float]:
    """(PSI, Jensen-Shannon distance, chi-square p) over categories expected >= 5 times on both sides; the rest
    pool into one 'rare' category. Without pooling a long tail of rare codes inflates PSI (each code absent
    from the reference adds p*log(p/eps)) and breaks the chi-square approximation."""
    keys = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in keys], dtype=float)
    c = np.array([cur.get(k, 0) for k in keys], dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0, 0.0, 1.0
    r, c = _pool_rare(r, c)
    if r.size < 2:
        return 0.0, 0.0, 1.0
    pr, pc = r / r.sum(), c / c.sum()
    eps = 1e-4
    psi = float(np.sum((pc - pr) * np.log((pc + eps) / (pr + eps))))
    mid = (pr + pc) / 2
    js = float(stats.entropy(pr, mid, base=2) + stats.entropy(pc, mid, base=2)) / 2
    return psi, math.sqrt(max(js, 0.0)), float(stats.chi2_contingency(np.vstack([r, c]), correction=False)[1])


def _pool_rare(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = r + c
    expected_c = total * c.sum() / total.sum()
    expected_r = total * r.sum() / total.sum()
    rare = (expected_c < 5) | (expected_r < 5)
    if rare.any():
        r = np.append(r[~rare], r[rare].sum())
        c = np.append(c[~rare], c[rare].sum())
    keep = (r + c) > 0
    return r[keep], c[keep]


def mix_predicted_change(ref: SegmentProfile, cur: SegmentProfile, column: str, contract) -> float | None:
    """For a result or unit column of a value/unit/code triple: how much its share of rows without a number
    (result) or without a unit (unit) should have changed given only the change in the codes' mix, from each
    code's own rate in the reference. None when the column is in no triple."""
    for pair in getattr(contract, "value_unit_pairs", None) or []:
        if column not in (pair.value, pair.unit):
            continue
        before = next((p for p in ref.pairs if (p.value, p.unit, p.code) == (pair.value, pair.unit, pair.code)), None)
        now = next((p for p in cur.pairs if (p.value, p.unit, p.code) == (pair.value, pair.unit, pair.code)), None)
        if before is None or now is None:
            return None
        lacking = _lacks_number if column == pair.value else _lacks_unit
        rates = {code: lacking(before, code) for code in before.codes()}
        overall = _rate(before)[0] if column == pair.value else _unitless(before)
        rows = sum(now.counts.values())
        if not rows:
            return None
        expected = sum(n * rates.get(code, overall) for (code, _), n in now.counts.items()) / rows
        return expected - overall
    return None


def _rate(pair) -> tuple[float, int]:
    rows = sum(pair.counts.values())
    numbers = sum(s.n for s in pair.stats.values())
    return (1 - numbers / rows if rows else 0.0), rows


def _lacks_number(pair, code: str) -> float:
    rows = sum(n for (c, _), n in pair.counts.items() if c == code)
    numbers = sum(s.n for (c, _), s in pair.stats.items() if c == code)
    return 1 - numbers / rows if rows else 0.0


def _lacks_unit(pair, code: str) -> float:
    units = pair.units(code)
    rows = sum(units.values())
    return units.get("", 0) / rows if rows else 0.0


def _unitless(pair) -> float:
    rows = sum(pair.counts.values())
    return sum(n for (_, u), n in pair.counts.items() if u == "") / rows if rows else 0.0


def has_rows(segment: SegmentProfile | None, config: CheckConfig) -> bool:
    return segment is not None and segment.n_rows >= config.min_rows


@dataclass
class Context:
    """What a check needs besides the two profiles it compares."""

    contract: object  # monitors.contract.Contract (kept loose to avoid an import cycle in type hints)
    config: CheckConfig
    segment: str = ALL
    segment_column: str | None = None
    approved: object = None  # callable code -> bool, or None: no mapping store
    encoder: object = None  # callable list[str] -> np.ndarray, or None: no embedding drift
    reference_all: SegmentProfile | None = None  # the whole reference, for "seen anywhere before"

    @property
    def label(self) -> str:
        return segment_label(self.segment_column, self.segment)

    def finding(self, check: str, column: str, statistic: float, threshold: float, message: str, **kw) -> Finding:
        critical = kw.pop("critical", float("inf"))
        exceeded = kw.pop("exceeded", abs(statistic) >= threshold)
        severity = kw.pop("severity", severity_for(statistic, threshold, critical))
        return Finding(
            check=check,
            column=column,
            segment=self.segment,
            severity=severity,
            statistic=float(statistic),
            threshold=float(threshold),
            message=f"{self.label}: {message}",
            exceeded=exceeded,
            **kw,
        )
