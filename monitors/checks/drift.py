"""Distribution drift with effect-size floors: numeric (Wasserstein / reference SD), categorical (PSI, JS),
and per lab code (value distribution of one LOINC code in its usual unit).

p-values alone flag 0.02-SD noise once n is large; the floors keep big batches quiet, and BH across
columns x segments keeps many columns quiet. Distances are computed on the mergeable sketches rather than
with Evidently's stattests on raw rows, which need both full frames in memory (see benchmarks/drift.py
for the speed difference).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from monitors.checks.base import Context, Finding, categorical_shift, has_rows, numeric_shift
from monitors.profile import PairProfile, PatientSums, SegmentProfile


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
    """Per lab code: is this code's value distribution (in its reference unit) different? With a patient column
    the test counts patients, not rows (see `patient_sample`): a batch of other patients is a case-mix change,
    not drift."""
    out = []
    for before, pair, code in matched_lab_codes(ref, cur):
        unit = dominant_unit(before, code)
        a, b = before.stats.get((code, unit)), pair.stats.get((code, unit))
        if a is None or b is None or b.n < ctx.config.min_rows or a.n < ctx.config.min_rows or a.std == 0:
            continue
        details = {"code": code, "unit": unit, "mean_reference": a.mean, "mean_current": b.mean}
        sample = patient_sample(before.patients.get((code, unit)), pair.patients.get((code, unit)), a.n, b.n)
        effect, p = numeric_shift(a, b, *((sample.n_reference, sample.n_current) if sample else ()))
        rows = f"n={b.n}"
        if sample is not None:
            details |= sample.details(a.std)
            rows = f"n={b.n} rows of {sample.patients} patients, {sample.n_current:.0f} effective"
            if sample.paired_p is not None:
                within = abs(sample.paired_shift) / a.std
                effect, p = _either(((effect, p), (within, sample.paired_p)), ctx.config.lab_drift)
                rows += f"; within the same {sample.shared} patients {sample.paired_shift / a.std:+.2f} SDs"
        out.append(
            ctx.finding(
                "lab_drift",
                f"{pair.value}[{code}]",
                effect,
                ctx.config.lab_drift,
                f"{code_name(code)} values ({unit}) shifted by {effect:.2f} reference SDs (mean {a.mean:.4g} -> "
                f"{b.mean:.4g}, {rows})",
                critical=1.0,
                p_value=p,
                details=details,
            )
        )
    return out


def _either(tests: tuple[tuple[float, float], ...], floor: float) -> tuple[float, float]:
    """(effect, p) of two tests of one analyte, Bonferroni over both: the most significant of those whose own
    effect passes the floor, so a tiny change within the same patients (a child's height) is not carried by the
    other test's large effect (which patients were measured)."""
    passing = [test for test in tests if test[0] >= floor]
    effect, p = min(passing, key=lambda test: test[1]) if passing else (tests[0][0], min(t[1] for t in tests))
    return effect, min(1.0, len(tests) * p)


MIN_PAIRED_PATIENTS = 5  # patients in both the reference and the batch for the paired test


@dataclass(frozen=True)
class PatientSample:
    """How many independent observations an analyte's rows are worth when patients repeat."""

    icc: float  # share of the reference's variance that lies between patients
    n_reference: float  # effective sample sizes: rows / (1 + (rows per patient - 1) * icc)
    n_current: float
    patients: int  # in the batch (sampled)
    shared: int  # patients in both
    paired_p: float | None  # the same patients' means, now vs before (None: too few in both)
    paired_shift: float  # their mean change, in the values' unit

    def details(self, scale: float) -> dict:
        return {
            "patients": self.patients,
            "icc": round(self.icc, 4),
            "effective_rows_reference": round(self.n_reference, 1),
            "effective_rows_current": round(self.n_current, 1),
            "paired_patients": self.shared,
            "paired_shift_sd": None if self.paired_p is None else self.paired_shift / scale,
        }


def patient_sample(before: PatientSums | None, now: PatientSums | None, n_before: int, n_now: int):
    """Repeated measurements of one patient are not independent evidence: rows count as
    n / (1 + (m - 1) * ICC) (Kish's design effect; m the rows per patient, ICC the reference's between-patient
    share of variance), so ten weights of one patient weigh about as much as one. Patients in both the reference
    and the batch are also compared with themselves (each one's mean now minus before, weighted by their rows,
    against the spread of their own values):
    differences between patients cancel there, so a shift of every patient's values is seen even on a few
    patients while a batch of other patients is not drift. None when either side recorded no patients."""
    if not before or not now:
        return None
    icc = _icc(before)
    shared = sorted(before.keys() & now.keys())
    paired_p, shift = None, 0.0
    if len(shared) >= MIN_PAIRED_PATIENTS:
        paired_p, shift = _within_patients(before, now, shared)
    return PatientSample(
        icc=icc,
        n_reference=n_before / _design_effect(before, icc),
        n_current=n_now / _design_effect(now, icc),
        patients=len(now),
        shared=len(shared),
        paired_p=paired_p,
        paired_shift=shift,
    )


def _design_effect(patients: PatientSums, icc: float) -> float:
    counts = np.array([n for n, _, _ in patients.values()], dtype=float)
    rows_per_patient = float((counts**2).sum() / counts.sum())  # as a random row sees it
    return 1.0 + (rows_per_patient - 1.0) * icc


def _icc(patients: PatientSums) -> float:
    """One-way ANOVA estimate of the intra-class correlation, clipped to [0, 1]."""
    n, sums, squares = (np.array(column, dtype=float) for column in zip(*patients.values()))
    total, k = float(n.sum()), len(n)
    if k < 2 or total <= k:
        return 0.0
    grand = float(sums.sum()) / total
    between = float((sums**2 / n).sum()) - total * grand**2
    within = float(squares.sum()) - float((sums**2 / n).sum())
    ms_between, ms_within = between / (k - 1), max(within, 0.0) / (total - k)
    size = (total - float((n**2).sum()) / total) / (k - 1)
    denominator = ms_between + (size - 1) * ms_within
    return float(np.clip((ms_between - ms_within) / denominator, 0.0, 1.0)) if denominator > 0 else 0.0


def _within_patients(before: PatientSums, now: PatientSums, shared: list[int]) -> tuple[float, float]:
    """(p, mean change) of the batch against the reference within the same patients: value ~ patient + period,
    each patient's change weighted by its precision 1 / (1/rows now + 1/rows before), its error from the spread
    of every patient's rows around their own mean on either side."""
    changes = np.array([now[h][1] / now[h][0] - before[h][1] / before[h][0] for h in shared])
    weights = np.array([1.0 / (1.0 / now[h][0] + 1.0 / before[h][0]) for h in shared])
    shift = float(np.average(changes, weights=weights))
    rows = [side[h] for h in shared for side in (before, now)]
    within = sum(max(squares - total * total / n, 0.0) for n, total, squares in rows)
    df = sum(n for n, _, _ in rows) - 2 * len(shared)
    if df < 2:
        return 1.0, shift
    if within == 0:
        return (1.0 if shift == 0 else 0.0), shift
    t = shift / math.sqrt(within / df / float(weights.sum()))
    return float(2 * stats.t.sf(abs(t), df)), shift


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
