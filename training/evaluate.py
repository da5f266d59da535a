"""Held-out evaluation and confidence calibration of a suggester.

Metrics are those of benchmarks/mapping.py: acc@k = a gold target within the top k, MRR@10 = mean of
1/rank of the first hit (0 when none in the top 10). Calibration: a suggestion's score should be the
probability that it is right; the expected calibration error (ECE) compares the top suggestion's
score with how often it is right, in 10 equal-width score bins weighted by their size.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import numpy as np

from models.fusion import FEATURES, Fusion, LogisticFusion, RerankedFusion, TreeEnsemble, rival_logit, select_features
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


def calibrated_ece_floor(confidences: Sequence[float], draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated score would still show at these confidences, on average over
    outcomes drawn with exactly those probabilities: a small test set's bins are noisy (about 0.07
    for 171 queries spread over five bins), so a measured ECE is read against this floor."""
    confidence = np.asarray(confidences, dtype=float)
    rng = np.random.default_rng(seed)
    by_chance = [expected_calibration_error(confidence, rng.random(len(confidence)) < confidence) for _ in range(draws)]
    return float(np.mean(by_chance))


def evaluate(
    suggester, mappings: Sequence[ApprovedMapping], where=None, latency_queries: int = 100
) -> dict[str, float]:
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
RERANK_DEPTH = 60  # linear top candidates the trees re-rank: holds ~0.9 of the gold, ~0.4 ms a query
TREES = {"max_iter": 400, "learning_rate": 0.05, "max_leaf_nodes": 63}  # 4-fold CV on GEM train
Labelled = tuple[np.ndarray, np.ndarray]  # one query's candidate features and which are right


def labelled_pools(
    suggester, items: Sequence[SourceItem | str], gold: Sequence[Collection[str]], where=None
) -> list[Labelled]:
    """Each query's candidate features, labelled True where the candidate is one of its gold codes."""
    codes = [c.code for c in suggester.terminology]
    pools = suggester.candidates(list(items), where)
    return [(p.features, np.array([codes[i] in set(targets) for i in p.pool])) for p, targets in zip(pools, gold)]


def fit_fusion(
    suggester, mappings: Sequence[ApprovedMapping], version: str, where=None
) -> tuple[RerankedFusion, dict[str, float]]:
    """Fit the re-ranked fusion on `mappings` (see fit_labelled) with `suggester`'s candidates: on the
    features its fusion reads, the only ones its candidates are sure to carry."""
    items, gold = [m.item() for m in mappings], [m.targets for m in mappings]
    return fit_labelled(labelled_pools(suggester, items, gold, where), version, features=suggester.fusion.features)


Variant = tuple[int, Labelled]  # another shape of query `i` (its position in the labelled list) and its pool


def fit_labelled(
    labelled: Sequence[Labelled],
    version: str,
    repeats: Sequence[int] | None = None,
    fit_only: Sequence[Variant] = (),
    folds: int = 1,
    max_trees: int | None = None,
    seeds: Sequence[int] = (0,),
    features: tuple[str, ...] = FEATURES,
) -> tuple[RerankedFusion, dict[str, float]]:
    """Linear fusion + trees, and a Platt calibration on scores the trees did not see.

    `folds` = 1: the trees are fitted on four fifths of the queries and calibrated on the other fifth
    (`labelled[4::5]`, taken by position in a hash-ordered list). `folds` = k > 1: k tree fits, each
    leaving out every k-th query, served as one TreeEnsemble and calibrated on every query's
    out-of-fold score: k times the calibration data, and an average of k fits instead of one.

    `repeats[i]`: how many times query i counts in the fit (a small domain beside a large one); the
    calibration counts every query once. `fit_only`: other shapes of the queries (an origin index and
    its pool), held out with their origin: with folds = 1 never calibrated on, with folds > 1
    calibrated out of fold like it (the shapes a feed will send).

    `max_trees`: at most this many trees per fit (TREES' own limit otherwise): every tree costs each
    query its time.

    `seeds`: the trees' random seeds to try (folds > 1); the fit whose calibrated out-of-fold scores
    are best calibrated is kept. On a small domain the seed moves calibration more than ranking, and
    the out-of-fold error ranks the seeds as held-out names do (see the README's benchmark).

    `features`: the columns of FEATURES the fusion may read (those the pools were computed with).

    Platt scaling (a logistic on the top suggestion's logit) is a positive rescaling: it keeps every
    ranking and makes the served score calibrated.
    """
    if folds < 1:
        raise ValueError(f"folds must be 1 or more, not {folds}")
    counts = list(repeats or [1] * len(labelled))
    if folds > 1:
        fold = [i % folds for i in range(len(labelled))]
    else:  # fold 0 is the calibration fifth; -1 is never held out (all of a list too short to split)
        fold = [0 if i % 5 == 4 and len(labelled) >= 5 else -1 for i in range(len(labelled))]
    fit = [(fold[i], pool) for i, pool in enumerate(labelled) for _ in range(counts[i])]
    fit += [(fold[origin], pool) for origin, pool in fit_only]
    # The linear stage only picks the candidates the trees re-rank: one low-capacity fit, on all
    # queries but a single calibration fifth.
    first = _fit_linear([pool for k, pool in fit if folds > 1 or k != 0], version, features)
    tops = [np.argsort(-first.score(f), kind="stable")[:RERANK_DEPTH] for _, (f, _) in fit]
    top_pools = [(k, (f[top], y[top])) for (k, (f, y)), top in zip(fit, tops)]
    if folds == 1:
        trees = _fit_trees([pool for k, pool in top_pools if k != 0], features, max_trees, seeds[0])
        calibration = [pool for i, pool in enumerate(labelled) if fold[i] == 0] or list(labelled)
        return calibrate(RerankedFusion(first, trees, RERANK_DEPTH, version, features=features), calibration)
    held_out = [
        [pool for i, pool in enumerate(labelled) if fold[i] == held] + [p for o, p in fit_only if fold[o] == held]
        for held in range(folds)
    ]
    fits = [_cross_fit(first, top_pools, held_out, version, features, max_trees, seed) for seed in seeds]
    fusion, report = min(fits, key=lambda fitted: fitted[1]["fit_ece_calibrated"])
    report["seeds"] = {seed: round(fitted[1]["fit_ece_calibrated"], 4) for seed, fitted in zip(seeds, fits)}
    return fusion, report


def _cross_fit(first, top_pools, held_out, version, features, max_trees, seed) -> tuple[RerankedFusion, dict]:
    """One tree fit per fold, leaving that fold out, calibrated on every query's out-of-fold score."""
    members = [
        _fit_trees([p for k, p in top_pools if k != held], features, max_trees, seed) for held in range(len(held_out))
    ]
    rows = []  # every query's top logit, scored by the fit that left it out
    for member, out_of_fold in zip(members, held_out):
        rows += _top_logits(RerankedFusion(first, member, RERANK_DEPTH, version, features=features), out_of_fold)
    logit, rival, hit = (np.asarray(column) for column in zip(*rows))
    ensemble = RerankedFusion(first, TreeEnsemble(members), RERANK_DEPTH, version, features=features)
    fusion, report = _with_platt(ensemble, logit, rival, hit)
    report["tree_seed"] = seed
    return fusion, report


def _fit_linear(pools: Sequence[Labelled], version: str, features: tuple[str, ...] = FEATURES) -> LogisticFusion:
    labels = np.concatenate([y for _, y in pools])
    if labels.all() or not labels.any():
        raise ValueError("the fit split needs both right and wrong candidates to fit a fusion")
    rows = select_features(np.vstack([f for f, _ in pools]), features)
    return LogisticFusion.fit(rows, labels, version=f"{version}-linear", features=features)


def _fit_trees(
    top_pools: Sequence[Labelled], features: tuple[str, ...] = FEATURES, max_trees: int | None = None, seed: int = 0
):
    labels = np.concatenate([y for _, y in top_pools])
    if labels.all() or not labels.any():
        raise ValueError("the fit split needs both right and wrong top candidates to fit a fusion")
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Early stopping on a random tenth when there are over 10,000 candidates (scikit-learn's "auto").
    settings = {**TREES, "max_iter": min(TREES["max_iter"], max_trees or TREES["max_iter"]), "random_state": seed}
    rows = select_features(np.vstack([f for f, _ in top_pools]), features)
    return HistGradientBoostingClassifier(**settings).fit(rows, labels)


def _top_logits(fusion: Fusion, labelled: Sequence[Labelled]) -> list[tuple[float, float, bool]]:
    """Per query: the fusion's logit for its top candidate, its rivals' (fusion.rival_logit), a hit."""
    rows = []
    for scores, (_, labels) in zip(fusion.score_pools([f for f, _ in labelled]), labelled):
        logit = np.log(np.clip(scores, 1e-7, 1 - 1e-7) / (1 - np.clip(scores, 1e-7, 1 - 1e-7)))
        best = int(np.argmax(scores))
        # the rivals a re-ranked fusion serves with: its re-ranked top `depth`, never the tail below
        rival = rival_logit(np.sort(logit)[-fusion.depth :] if isinstance(fusion, RerankedFusion) else logit)
        rows.append((float(logit[best]), rival, bool(labels[best])))
    return rows


def calibrate(fusion: Fusion, labelled: Sequence[Labelled]) -> tuple[Fusion, dict]:
    """Platt scaling of the top suggestion's logit; a re-ranked fusion's also reads its rivals' (fusion.rival_logit)."""
    rows = _top_logits(fusion, labelled)
    logit, rival, hit = (np.asarray(column) for column in zip(*rows)) if rows else (np.zeros(0),) * 3
    return _with_platt(fusion, logit, rival, hit)


def _with_platt(fusion: Fusion, logit: np.ndarray, rival: np.ndarray, hit: np.ndarray) -> tuple[Fusion, dict]:
    hit = hit.astype(bool)
    before = expected_calibration_error(1 / (1 + np.exp(-logit)), hit)
    report = {"fit_ece_uncalibrated": before, "platt_a": 1.0, "platt_b": 0.0, "calibration_queries": len(hit)}
    if hit.all() or not hit.any():
        report["fit_ece_calibrated"] = before
        return fusion, report
    if isinstance(fusion, RerankedFusion):
        a, b, c = fit_platt_with_rival(logit, rival, hit)
    else:
        (a, b), c = fit_platt(logit, hit), 0.0
    calibrated = 1 / (1 + np.exp(-(a * logit + b + c * rival)))
    report.update(platt_a=a, platt_b=b, platt_c=c, fit_ece_calibrated=expected_calibration_error(calibrated, hit))
    return (fusion.with_platt(a, b, c) if c else fusion.with_platt(a, b)), report


def fit_platt_with_rival(logit: np.ndarray, rival: np.ndarray, hit: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) of P(hit) = sigmoid(a * logit + b + c * rival logit); plain Platt where a <= 0."""
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e4).fit(np.column_stack([logit, rival]), hit)
    a, c = (float(v) for v in platt.coef_[0])
    if a <= 1e-3:
        return (*fit_platt(logit, hit), 0.0)
    return a, float(platt.intercept_[0]), c


def fit_platt(logit: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
    """(a, b) of P(hit) = sigmoid(a * logit + b); `hit` must hold both outcomes."""
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e4).fit(logit[:, None], hit)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    if a <= 1e-3:
        # The top score says nothing about correctness here: a flat map to the observed hit rate,
        # kept (barely) increasing so that it can never reverse or tie a ranking.
        rate = float(np.clip(hit.mean(), 1e-3, 1 - 1e-3))
        a = 1e-3
        b = float(np.log(rate / (1 - rate)) - a * logit.mean())
    return a, b
