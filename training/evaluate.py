"""Held-out evaluation and confidence calibration of a suggester.

Metrics are those of benchmarks/mapping.py: acc@k = a gold target within the top k, MRR@10 = mean of
1/rank of the first hit (0 when none in the top 10). Calibration: a suggestion's score should be the
probability that it is right; the expected calibration error (ECE) compares the top suggestion's
score with how often it is right, in 10 equal-width score bins weighted by their size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from models.fusion import LogisticFusion
from models.items import SourceItem
from training.sets import ApprovedMapping

ECE_BINS = 10


def ranking_metrics(ranked: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict[str, float]:
    first_hit = []
    for codes, targets in zip(ranked, gold):
        wanted = set(targets)
        ranks = [i for i, code in enumerate(codes[:10], 1) if code in wanted]
        first_hit.append(ranks[0] if ranks else None)
    n = max(len(first_hit), 1)
    return {
        "acc@1": sum(r == 1 for r in first_hit if r) / n,
        "acc@5": sum(r <= 5 for r in first_hit if r) / n,
        "acc@10": sum(r <= 10 for r in first_hit if r) / n,
        "mrr@10": sum(1 / r for r in first_hit if r) / n,
    }


def expected_calibration_error(confidences: Sequence[float], hits: Sequence[bool], bins: int = ECE_BINS) -> float:
    confidence = np.asarray(confidences, dtype=float)
    correct = np.asarray(hits, dtype=float)
    if len(confidence) == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def evaluate(suggester, mappings: Sequence[ApprovedMapping], where=None, latency_queries: int = 100) -> dict[str, float]:
    """acc@1/5/10, MRR@10, ECE of the top score, and single-query latency, on `mappings`."""
    items = [SourceItem(m.source_code, m.source_text, dict(m.context)) for m in mappings]
    results = suggester.suggest(items, top_k=10, where=where)
    metrics = ranking_metrics([[s.code for s in r] for r in results], [m.targets for m in mappings])
    top = [(r[0].score, r[0].code in m.targets) if r else (0.0, False) for r, m in zip(results, mappings)]
    metrics["ece"] = expected_calibration_error([c for c, _ in top], [h for _, h in top])
    metrics.update(latency_ms(suggester, items[:latency_queries], where))
    metrics["queries"] = float(len(mappings))
    return metrics


def latency_ms(suggester, items: Sequence[SourceItem], where=None) -> dict[str, float]:
    times = []
    for item in items:
        started = time.perf_counter()
        suggester.suggest([item], top_k=10, where=where)
        times.append((time.perf_counter() - started) * 1000)
    if not times:
        return {}
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p95_ms": float(np.percentile(times, 95))}


# -- fitting the fusion and its calibration ---------------------------------------------------------
def fit_fusion(
    suggester, mappings: Sequence[ApprovedMapping], version: str, where=None
) -> tuple[LogisticFusion, dict[str, float]]:
    """Refit the 14-weight fusion on half of `mappings`, Platt-calibrate it on the other half.

    Platt scaling (a logistic on the top suggestion's logit) is folded into the fusion's weights:
    a positive rescaling of the logit keeps every ranking and makes the served score calibrated,
    with no change to how suggestions are served. Halves by position in a hash-ordered list, so the
    calibration is fitted on scores the fusion did not see.
    """
    codes = [c.code for c in suggester.terminology]
    pools = suggester.candidates([m.query_text() for m in mappings], where)
    labelled = [
        (pool.features, np.array([codes[i] in set(m.targets) for i in pool.pool])) for pool, m in zip(pools, mappings)
    ]
    fusion_half, calibration_half = labelled[0::2], labelled[1::2] or labelled[0::2]
    features = np.vstack([f for f, _ in fusion_half])
    labels = np.concatenate([y for _, y in fusion_half])
    if labels.all() or not labels.any():
        raise ValueError("the fit split needs both right and wrong candidates to fit a fusion")
    fusion = LogisticFusion.fit(features, labels, version=version)
    return calibrate(fusion, calibration_half)


def calibrate(fusion: LogisticFusion, labelled: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[LogisticFusion, dict]:
    from sklearn.linear_model import LogisticRegression

    logits, hits = [], []
    for features, labels in labelled:
        z = features @ fusion.coef + fusion.intercept
        best = int(np.argmax(z))
        logits.append(float(z[best]))
        hits.append(bool(labels[best]))
    logit, hit = np.asarray(logits), np.asarray(hits)
    before = expected_calibration_error(1 / (1 + np.exp(-logit)), hit)
    report = {"fit_ece_uncalibrated": before, "platt_a": 1.0, "platt_b": 0.0}
    if hit.all() or not hit.any():
        report["fit_ece_calibrated"] = before
        return fusion, report
    platt = LogisticRegression(C=1e4).fit(logit[:, None], hit)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    if a <= 1e-3:
        # The top score says nothing about correctness here: a flat map to the observed hit rate,
        # kept (barely) increasing so that it can never reverse or tie a ranking.
        rate = float(np.clip(hit.mean(), 1e-3, 1 - 1e-3))
        a = 1e-3
        b = float(np.log(rate / (1 - rate)) - a * logit.mean())
    calibrated = LogisticFusion(fusion.coef * a, fusion.intercept * a + b, f"{fusion.version}-platt")
    report.update(platt_a=a, platt_b=b, fit_ece_calibrated=expected_calibration_error(1 / (1 + np.exp(-(a * logit + b))), hit))
    return calibrated, report
