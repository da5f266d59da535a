"""Retrain the field suggester on a team's approved field mappings.

    approved columns (train + fit parts of the split)  -->  history: what the team approved before
    each column's evidence (bundled + history, leaving the column itself out of the history)
      -->  candidate pools: the bundled model's top fields, the history's top fields, the approved ones
      -->  logistic weights over the evidence (5 folds by source column: out-of-fold sums)
      -->  the (sum, gap) calibration fitted on the out-of-fold sums  -->  weights refitted on all

No encoder is fine-tuned: a team has hundreds of approved columns, not thousands, and what they
teach is how far its names can be trusted and where its tables go. The challenger is the bundled
field suggester ranking with the learned `FieldRanker` (models/fields/learned.py); it is evaluated,
logged and gated exactly as a code model (service/retraining.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.fields.learned import HISTORY_EVIDENCE, ApprovedField, FieldHistory, FieldRanker
from models.fields.serving import FieldTerminologySuggester, source_column
from models.fields.suggest import CALIBRATION, EVIDENCE, calibrated
from models.terminology import attributes_match
from training.evaluate import Labelled, expected_calibration_error, fit_platt
from training.sets import ApprovedMapping, Split, _code_hash

FEATURES = ("bundled", *EVIDENCE, *HISTORY_EVIDENCE)  # "bundled": the bundled weighted sum
POOL = 30  # candidates per column from each ranking (bundled, history): holds the approved field for most
FOLDS = 5
CALIBRATION_TOP = 5  # as the bundled calibration: fitted on each column's top five candidates
REGULARISATION = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried; the best out of fold is kept


@dataclass
class FieldChallenger:
    suggester: FieldTerminologySuggester
    ranker: FieldRanker
    calibration: dict[str, float]  # fit ECE before/after and the (sum, gap) calibration
    columns: int  # approved columns the ranker was fitted on

    @property
    def version(self) -> str:
        return self.ranker.version

    def params(self) -> dict[str, object]:
        return {
            "base_model": "field-suggester (bundled weights) + all-MiniLM-L6-v2",
            "field_model": self.ranker.version,
            "field_features": ",".join(FEATURES),
            "field_pool": POOL,
            "field_folds": FOLDS,
            "field_regularisation_tried": ",".join(map(str, REGULARISATION)),
            "history_columns": len(self.ranker.history),
        }

    def metrics(self) -> dict[str, float]:
        weights = {f"weight_{k}": v for k, v in self.ranker.weights.items()}
        return {**self.calibration, **weights, "fit_columns": float(self.columns)}


def approved_fields(mappings: Sequence[ApprovedMapping]) -> list[ApprovedField]:
    return [ApprovedField(source_column(m.item()), tuple(m.targets)) for m in mappings]


def train_field_challenger(
    base: FieldTerminologySuggester,
    split: Split,
    out_dir: Path,
    where: dict | None = None,
    version: str = "fields",
    progress: bool = True,
) -> FieldChallenger:
    """Fit a `FieldRanker` on the split's train and fit columns; the held-out ones are never seen."""
    known = list({m.source_code: m for m in [*split.train, *split.fit]}.values())
    history = FieldHistory(tuple(approved_fields(known)))
    _say(progress, f"field model: evidence for {len(known)} approved columns (each without itself in the history)")
    pools = labelled_pools(base, known, history, where)
    _say(progress, f"field model: weights over {len(FEATURES)} kinds of evidence, {FOLDS} folds by source column")
    folds = np.array([_code_hash(m.source_code) // 20 % FOLDS for m in known])  # independent of the held-out fifth
    weights, calibration, report = fit_ranker(pools, folds)
    ranker = FieldRanker(dict(zip(FEATURES, map(float, weights))), calibration, history, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranker.save(out_dir)
    model_version = f"{base.model_version}+{version}"
    return FieldChallenger(base.with_ranker(ranker, model_version), ranker, report, len(known))


def labelled_pools(
    base: FieldTerminologySuggester, known: Sequence[ApprovedMapping], history: FieldHistory, where: dict | None
) -> list[Labelled]:
    """Each approved column's candidate pool: FEATURES per candidate, and which are its approved fields."""
    fitted = base.suggester.with_ranker(None)
    columns = [a.source for a in history.approved]
    evidence = fitted.evidence(columns)
    evidence.update(fitted.history_evidence(columns, history, leave_out=list(range(len(columns)))))
    evidence["bundled"] = fitted.total(evidence)
    keys = [c.code for c in base.terminology]
    allowed = np.array([attributes_match(c, where) for c in base.terminology]) if where else None
    pools = candidate_pools(evidence["bundled"], evidence, keys, known, allowed)
    if not any(y.any() for _, y in pools):
        raise ValueError("no approved field is among its column's candidates: nothing to learn from")
    return pools


def fit_ranker(pools: Sequence[Labelled], folds: np.ndarray):
    """(weights, calibration, report): the L2 strength with the best out-of-fold acc@1 (a few hundred
    approvals bear fewer free weights), the calibration on its out-of-fold sums, weights refitted on all."""
    trials = {c: out_of_fold(pools, folds, c) for c in REGULARISATION}
    choice = max(REGULARISATION, key=lambda c: (pool_accuracy(trials[c], pools), -c))
    scored = [(s, y) for s, (_, y) in zip(trials[choice], pools) if len(s)]
    calibration, report = fit_calibration(scored)
    report.update(regularisation_c=choice, fit_oof_acc_at_1=pool_accuracy(trials[choice], pools))
    report["fit_acc_at_1_bundled"] = pool_accuracy([f[:, FEATURES.index("bundled")] for f, _ in pools], pools)
    return fit_weights(pools, choice), calibration, report


def candidate_pools(
    totals: np.ndarray,
    evidence: dict[str, np.ndarray],
    keys: Sequence[str],
    mappings: Sequence[ApprovedMapping],
    allowed: np.ndarray | None = None,
) -> list[Labelled]:
    """Per column: (pool x FEATURES) evidence and whether each candidate is an approved target."""
    history = sum(evidence[k] for k in HISTORY_EVIDENCE)
    position = {key: j for j, key in enumerate(keys)}
    out = []
    for i, mapping in enumerate(mappings):
        gold = [position[t] for t in mapping.targets if t in position]
        ranked = []
        for scores in (totals[i], totals[i] + history[i]):
            masked = scores if allowed is None else np.where(allowed, scores, -np.inf)
            ranked.extend(np.argsort(-masked, kind="stable")[:POOL].tolist())
        pool = np.array(list(dict.fromkeys([*ranked, *gold])))
        features = np.column_stack([evidence[k][i, pool] for k in FEATURES])
        out.append((features, np.isin(pool, gold)))
    return out


def out_of_fold(pools: Sequence[Labelled], folds: np.ndarray, c: float) -> list[np.ndarray]:
    """Each pool scored by weights fitted on the other folds (empty where no fold could be fitted)."""
    scores = [np.zeros(0)] * len(pools)
    for fold in range(FOLDS):
        inside = [p for p, f in zip(pools, folds) if f != fold]
        if not any(y.any() and not y.all() for _, y in inside):
            continue
        weights = fit_weights(inside, c)
        for i in np.flatnonzero(folds == fold):
            scores[i] = pools[i][0] @ weights
    return scores


def pool_accuracy(scores: Sequence[np.ndarray], pools: Sequence[Labelled]) -> float:
    """acc@1 within the pools: the top-scored candidate is an approved field."""
    hits = [bool(y[int(np.argmax(s))]) for s, (_, y) in zip(scores, pools) if len(s)]
    return sum(hits) / max(len(hits), 1)


def fit_weights(pools: Sequence[Labelled], c: float = 1.0) -> np.ndarray:
    """Pairwise logistic weights: each approved field against each other candidate of its column.

    A ranking objective, not a pointwise one: evidence that is high for a whole pool (every
    `*.person_id` field when a `PAT_ID` column was approved before) says nothing about which one
    is right, and a pointwise fit would learn it as a reason against all of them.
    """
    from sklearn.linear_model import LogisticRegression

    differences = [f[y][:, None, :] - f[~y][None, :, :] for f, y in pools if y.any() and not y.all()]
    if not differences:
        raise ValueError("the approved columns need both right and wrong candidates to fit a field model")
    better = np.vstack([d.reshape(-1, d.shape[-1]) for d in differences])
    features = np.vstack([better, -better])
    labels = np.concatenate([np.ones(len(better)), np.zeros(len(better))])
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000).fit(features, labels)
    return model.coef_[0]


def fit_calibration(scored: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[float, float, float], dict]:
    """P(right) = sigmoid(a * sum + b * gap + c), the bundled calibration's form.

    The gap weight `b` comes from each column's top five candidates; `a` and `c` are then refitted
    on the top candidates alone (gap 0), whose score is the confidence a reviewer reads and the
    promotion gate's ECE measures. The bundled calibration is kept where the top candidates are all
    right or all wrong.
    """
    from sklearn.linear_model import LogisticRegression

    rows, labels, tops = [], [], []
    for totals, hits in scored:
        order = np.argsort(-totals, kind="stable")[:CALIBRATION_TOP]
        best = totals[order[0]]
        rows.extend((totals[j], totals[j] - best) for j in order)
        labels.extend(bool(hits[j]) for j in order)
        tops.append((best, bool(hits[order[0]])))
    x, y = np.asarray(rows), np.asarray(labels)
    top, hit = np.array([t for t, _ in tops]), np.array([h for _, h in tops])
    if len(y) == 0 or y.all() or not y.any() or hit.all() or not hit.any():
        return CALIBRATION, {}
    b = float(LogisticRegression(C=1e4, max_iter=2000).fit(x, y).coef_[0][1])
    a, c = fit_platt(top, hit)
    b = max(b, -a + 1e-3)  # a + b > 0: the score keeps increasing with the sum, so it keeps the ranking
    after = expected_calibration_error(calibrated(top[:, None], (a, b, c))[:, 0], hit)
    return (a, b, c), {
        "fit_ece_calibrated": after,
        "calibration_a": a,
        "calibration_b": b,
        "calibration_c": c,
    }


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)
