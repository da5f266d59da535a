"""Training sets, calibration, the gate and the challenger pipeline, on the tiny terminology."""

from __future__ import annotations

import numpy as np
import pytest

from models.fusion import FEATURES, LogisticFusion, RerankedFusion
from models.suggest import Suggester
from training.datasets import is_test_code
from training.evaluate import calibrate, calibrated_ece_floor, evaluate, expected_calibration_error, ranking_metrics
from training.finetune import FineTuneConfig
from training.gate import GatePolicy, decide
from training.pipeline import TrainConfig, train_challenger
from training.sets import ApprovedMapping, data_hash, is_fit_code, mine_hard_negatives, split_by_code, triplets


def test_split_is_by_source_code_and_the_same_in_every_run(mappings):
    split = split_by_code(mappings)
    again = split_by_code(list(reversed(mappings)))
    assert {m.source_code for m in split.heldout} == {m.source_code for m in again.heldout}
    assert all(is_test_code(m.source_code) for m in split.heldout)
    assert all(is_fit_code(m.source_code) for m in split.fit)
    assert not any(is_test_code(m.source_code) or is_fit_code(m.source_code) for m in split.train)
    parts = [{m.source_code for m in part} for part in (split.train, split.fit, split.heldout)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(mappings)


def test_data_hash_depends_on_the_data_not_its_order(mappings):
    assert data_hash(mappings) == data_hash(list(reversed(mappings)))
    changed = [*mappings[:-1], ApprovedMapping(mappings[-1].source_code, mappings[-1].source_text, ("I10",))]
    assert data_hash(changed) != data_hash(mappings)


def test_hard_negatives_are_high_ranking_wrong_codes_and_reviewer_rejections_come_first(tiny_icd, encoder, mappings):
    suggester = Suggester(tiny_icd, encoder)
    mined = mine_hard_negatives(suggester, mappings, per_query=2)
    assert all(len(codes) == 2 and not set(codes) & set(m.targets) for codes, m in zip(mined, mappings))
    rejected = ApprovedMapping("X1", "type 2 diabetes without complications", ("E11.9",), negatives=("I10",))
    display = {c.code: c.display for c in tiny_icd}
    [triplet] = triplets([rejected], [("E11.65",)], display)
    assert triplet.positive == "type 2 diabetes mellitus without complications"
    assert triplet.negative == "essential primary hypertension"  # the reviewer's rejection, not the mined one
    assert triplets([rejected], [("E11.65",)], display, max_pairs=1) == [triplet]


def test_the_ece_floor_is_what_a_calibrated_score_shows_by_chance_and_shrinks_with_more_queries():
    assert calibrated_ece_floor([0.0] * 50 + [1.0] * 50) == 0.0  # certain outcomes: no noise
    spread = np.linspace(0.2, 0.7, 171)
    floor = calibrated_ece_floor(spread)
    assert 0.04 < floor < 0.1
    assert calibrated_ece_floor(np.repeat(spread, 10)) < floor / 2


def test_ece_measures_the_gap_between_confidence_and_accuracy():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)
    assert ranking_metrics([["a", "b"], ["c", "d"]], [("b",), ("x",)]) == {
        "acc@1": 0.0,
        "acc@5": 0.5,
        "acc@10": 0.5,
        "mrr@10": 0.25,
    }


def test_platt_calibration_keeps_the_ranking_and_fixes_overconfidence():
    rng = np.random.default_rng(0)
    fusion = LogisticFusion(np.ones(len(FEATURES), np.float32), 4.0, "overconfident")  # top scores ~0.99
    pools = []
    for _ in range(300):
        features = rng.normal(size=(5, len(FEATURES))).astype(np.float32)
        labels = np.zeros(5, bool)
        labels[int(np.argmax(features.sum(1)))] = rng.random() < 0.5  # the top is right half the time
        pools.append((features, labels))
    calibrated, report = calibrate(fusion, pools)
    assert report["fit_ece_uncalibrated"] > 0.3 and report["fit_ece_calibrated"] < 0.1
    features = pools[0][0]
    assert (np.argsort(-calibrated.score(features)) == np.argsort(-fusion.score(features))).all()


def test_a_close_rival_lowers_the_calibrated_confidence_but_never_the_ranking():
    rng = np.random.default_rng(1)
    fusion = _trees_fusion(rng)
    pools = []
    for _ in range(400):
        features = rng.normal(size=(6, len(FEATURES))).astype(np.float32)
        logits = fusion.tree_logits([features])[0]
        best, gap = int(np.argmax(logits)), float(np.sort(logits)[-1] - np.sort(logits)[-2])
        labels = np.zeros(6, bool)
        labels[best] = rng.random() < (0.9 if gap > 1.0 else 0.3)  # a top with a close rival is often wrong
        pools.append((features, labels))
    calibrated, report = calibrate(fusion, pools)
    assert report["platt_c"] < 0 and report["fit_ece_calibrated"] < report["fit_ece_uncalibrated"]
    for features, _ in pools[:20]:
        assert (np.argsort(-calibrated.score(features)) == np.argsort(-fusion.score(features))).all()
    older = RerankedFusion(fusion.first, fusion.trees, fusion.depth, "older", platt=(1.0, 0.0))
    assert np.allclose(older.score(pools[0][0]), fusion.score(pools[0][0]))  # (a, b) alone: no rival term


def _trees_fusion(rng) -> RerankedFusion:
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    labels = features[:, 0] + 0.3 * rng.normal(size=600) > 0.5
    trees = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(features, labels)
    first = LogisticFusion(np.ones(len(FEATURES), np.float32), 0.0, "linear")
    return RerankedFusion(first, trees, depth=6, version="trees")


def test_gate_needs_the_margin_and_no_worse_calibration():
    champion = {"acc@1": 0.60, "ece": 0.04}
    assert decide({"acc@1": 0.63, "ece": 0.03}, champion).promote
    assert not decide({"acc@1": 0.605, "ece": 0.03}, champion).promote  # below the 0.01 margin
    worse_calibrated = decide({"acc@1": 0.70, "ece": 0.06}, champion)
    assert not worse_calibrated.promote and "worse" in worse_calibrated.reasons[1]
    assert decide({"acc@1": 0.70, "ece": 0.06}, champion, GatePolicy(ece_tolerance=0.03)).promote


def test_challenger_pipeline_trains_on_train_codes_and_fits_fusion_on_others(
    tiny_icd, encoder, mappings, fake_fine_tuner, tmp_path
):
    split = split_by_code(mappings)
    base = Suggester(tiny_icd, encoder, cache_dir=tmp_path / "cache")
    challenger = train_challenger(
        base,
        tmp_path / "base",
        split,
        tmp_path / "out",
        lambda model_dir: encoder,
        tmp_path / "cache",
        TrainConfig(FineTuneConfig(max_pairs=10)),
        progress=False,
        fine_tuner=fake_fine_tuner,
    )
    train_queries = {t.anchor for t in fake_fine_tuner.train}
    heldout_texts = {m.source_text for m in split.heldout}
    assert len(fake_fine_tuner.train) == 10 and fake_fine_tuner.validation
    assert not train_queries & heldout_texts  # never trained on a held-out code
    assert (tmp_path / "out" / "fusion.joblib").exists() and (tmp_path / "out" / "history.json").exists()
    assert challenger.fusion.version.startswith("fusion-ft") and challenger.suggester.fusion is challenger.fusion
    metrics = evaluate(challenger.suggester, split.heldout)
    assert set(metrics) >= {"acc@1", "acc@5", "acc@10", "mrr@10", "ece", "latency_p95_ms"}
    assert metrics["acc@10"] == 1.0  # every tiny-ICD concept fits in a top 10


def test_a_names_specimen_moves_into_a_fluid_column_as_dictionaries_write_it():
    from training.datasets import LabQuery, specimen_in_column

    def query(text, **context):
        return LabQuery("lhcflowsheet", "1", text, context, frozenset({"2075-0"}))

    urine = specimen_in_column(query("Chloride Ur Qn", unit="mmol/L"))
    assert urine.text == "Chloride Qn" and urine.context == {"unit": "mmol/L", "fluid": "Urine"}
    assert urine.targets == frozenset({"2075-0"})
    # a chemistry section's serum test says "Blood", where the sample was drawn
    assert specimen_in_column(query("Chloride SerPl Qn", category="CHEMISTRY STUDIES")).context["fluid"] == "Blood"
    assert specimen_in_column(query("Chloride SerPl Qn")).context["fluid"] == "Serum"
    assert specimen_in_column(query("Glucose Pleural Fld")).context["fluid"] == "Pleural Fld"  # finer stays
    assert specimen_in_column(query("pO2 BldV")).context["fluid"] == "Venous blood"  # so does the draw
    assert specimen_in_column(query("Hgb Bld")).context["fluid"] == "Whole blood"
    assert specimen_in_column(query("Chloride Qn")) is None  # no specimen in the name
    assert specimen_in_column(query("Creatinine Ur/SerPl")) is None  # two specimens: a ratio, not one
    assert specimen_in_column(query("Ur")) is None  # nothing left to name the test
    assert specimen_in_column(query("Chloride Ur", fluid="Urine")) is None  # already in a column
    assert specimen_in_column(query("Tetracycline-Ur Susc")).text == "Tetracycline Susc"
    assert specimen_in_column(query("RBC Count (Elp)")) is None  # the specimen word is the analyte
    assert specimen_in_column(query("Plasma Cells %")) is None
