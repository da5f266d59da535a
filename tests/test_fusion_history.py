"""The re-ranked fusion (linear stage + trees) and a retrained model's approved history."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from models.fusion import (
    FEATURES,
    WEIGHTED_COVERAGE,
    LogisticFusion,
    RerankedFusion,
    TreeEnsemble,
    default_fusion,
    load_fusion,
    save_fusion,
)
from models.history import ASSOCIATION_PRIOR, NEIGHBOURS, ApprovedHistory, HistoryIndex, WordAssociations
from models.items import SourceItem
from models.rows import ConceptRows
from models.suggest import Suggester, _top, _top_allowed
from models.terminology import Concept, Terminology
from training.evaluate import fit_labelled

HISTORY = FEATURES.index("history_same")


def _pools(n_queries: int = 200, size: int = 8, seed: int = 0):
    """Candidates whose gold is the one with the highest feature sum, plus an interaction:
    a gold candidate with history_same > 0.5 wins even when its sum is low."""
    rng = np.random.default_rng(seed)
    pools = []
    for _ in range(n_queries):
        features = rng.normal(size=(size, len(FEATURES))).astype(np.float32)
        features[:, HISTORY] = 0.0
        labels = np.zeros(size, bool)
        labels[int(np.argmax(features[:, :4].sum(1)))] = True
        pools.append((features, labels))
    return pools


def test_reranked_fusion_fits_calibrates_and_ranks_the_gold_first():
    fusion, report = fit_labelled(_pools(), "test-reranked")
    assert isinstance(fusion, RerankedFusion) and fusion.version == "test-reranked-platt"
    assert set(report) >= {"fit_ece_uncalibrated", "fit_ece_calibrated", "platt_a", "platt_b"}
    held_out = _pools(100, seed=1)
    scores = fusion.score_pools([f for f, _ in held_out])
    hits = [bool(labels[int(np.argmax(s))]) for s, (_, labels) in zip(scores, held_out)]
    assert np.mean(hits) > 0.6  # chance: 1 in 8
    assert all(((s > 0) & (s < 1)).all() for s in scores)


def test_only_the_linear_top_is_re_ranked_and_the_rest_stays_below_it():
    fusion, _ = fit_labelled(_pools(), "test-depth")
    fusion = RerankedFusion(fusion.first, fusion.trees, depth=3, version="d3", platt=fusion.platt)
    features = _pools(1, size=10, seed=2)[0][0]
    scores = fusion.score(features)
    top3 = np.argsort(-fusion.first.score(features), kind="stable")[:3]
    rest = np.setdiff1d(np.arange(10), top3)
    assert scores[rest].max() < scores[top3].min()
    # one call for many pools, of any size (an empty pool included), gives each pool's own scores
    many = fusion.score_pools([features, features[:2], features[:0]])
    assert np.allclose(many[0], scores) and len(many[1]) == 2 and len(many[2]) == 0


def test_fusions_round_trip_through_a_model_folder_and_refuse_other_features(tmp_path):
    reranked, _ = fit_labelled(_pools(), "test-save")
    linear = reranked.first
    features = _pools(1, seed=3)[0][0]
    for fusion, folder in ((reranked, tmp_path / "reranked"), (linear, tmp_path / "linear")):
        folder.mkdir()
        save_fusion(fusion, folder)
        again = load_fusion(folder)
        assert type(again) is type(fusion) and again.version == fusion.version
        assert np.allclose(again.score(features), fusion.score(features), atol=1e-5)
    data = joblib.load(tmp_path / "reranked" / "fusion.joblib")
    joblib.dump({**data, "features": ["lexical", "length"]}, tmp_path / "reranked" / "fusion.joblib")
    with pytest.raises(ValueError, match="other features"):
        load_fusion(tmp_path / "reranked")
    (tmp_path / "reranked" / "fusion.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot read the fusion"):
        load_fusion(tmp_path / "reranked")
    with pytest.raises(ValueError, match="holds no fusion"):
        load_fusion(tmp_path / "empty")


def test_cross_fitted_trees_are_served_as_one_and_calibrated_on_every_query_out_of_fold(tmp_path):
    pools = _pools()
    variants = [(i, pool) for i, pool in enumerate(_pools(40, seed=4))]  # other shapes of the first 40
    fusion, report = fit_labelled(pools, "test-folds", fit_only=variants, folds=5)
    assert isinstance(fusion.trees, TreeEnsemble) and len(fusion.trees.members) == 5
    assert report["calibration_queries"] == len(pools) + len(variants)  # not a fifth of them
    features = _pools(1, seed=5)[0][0]
    members = [m.decision_function(features) for m in fusion.trees.members]
    assert np.allclose(fusion.trees.decision_function(features), np.mean(members, axis=0))
    held_out = _pools(100, seed=1)
    scores = fusion.score_pools([f for f, _ in held_out])
    assert np.mean([labels[int(np.argmax(s))] for s, (_, labels) in zip(scores, held_out)]) > 0.6
    save_fusion(fusion, tmp_path)
    assert np.allclose(load_fusion(tmp_path).score(features), fusion.score(features), atol=1e-5)
    _, single = fit_labelled(pools, "test-fifth", fit_only=variants)
    assert single["calibration_queries"] == len(pools) // 5
    capped, _ = fit_labelled(pools, "test-capped", folds=3, max_trees=5)
    assert [member.n_iter_ for member in capped.trees.members] == [5, 5, 5]
    with pytest.raises(ValueError, match="folds must be 1 or more"):
        fit_labelled(pools, "test-no-folds", folds=0)


def test_of_several_tree_seeds_the_best_calibrated_out_of_fold_is_kept():
    pools = _pools(2000)  # over 10,000 candidates a fit: early stopping draws its tenth by the seed
    fusion, report = fit_labelled(pools, "test-seeds", folds=3, seeds=(0, 1), max_trees=40)
    assert set(report["seeds"]) == {0, 1} and len(set(report["seeds"].values())) == 2  # the seed matters
    assert round(report["fit_ece_calibrated"], 4) == min(report["seeds"].values())
    alone, _ = fit_labelled(pools, "test-seed", folds=3, seeds=(report["tree_seed"],), max_trees=40)
    features = _pools(1, seed=5)[0][0]
    assert np.allclose(alone.score(features), fusion.score(features))  # the kept fit, not a blend


def test_a_fusion_fitted_on_some_features_names_them_and_reads_only_those():
    """A retrained fusion reads what its base read: candidates of a suggester whose fusion predates a
    feature carry 0 there, and a fusion fitted on those zeros must not read the served values."""
    older = FEATURES[: -len(WEIGHTED_COVERAGE)]
    fusion, _ = fit_labelled(_pools(), "test-older", features=older)
    assert fusion.features == fusion.first.features == older and fusion.trees.n_features_in_ == len(older)
    features = _pools(1, seed=5)[0][0]
    changed = features.copy()
    changed[:, [FEATURES.index(name) for name in WEIGHTED_COVERAGE]] = 9.0
    assert np.allclose(fusion.score(features), fusion.score(changed))


@pytest.mark.parametrize("terminology_format", [None, "loinc"])
def test_the_shipped_fusions_are_re_ranked_and_read_the_features_they_name(terminology_format):
    shipped = default_fusion(terminology_format)
    assert isinstance(shipped, RerankedFusion) and shipped.depth >= 10
    assert shipped.trees.n_features_in_ == len(shipped.features) == len(shipped.first.coef)
    # the LOINC fusion reads every feature; the shared one predates the weighted word coverage
    missing = set(FEATURES) - set(shipped.features)
    assert missing == (set() if terminology_format else set(WEIGHTED_COVERAGE))


# -- approved history ---------------------------------------------------------------------------------
def _family() -> Terminology:
    """A01 > A01.0 > {A01.00, A01.01}; A01 > A01.1 > A01.10; B99 on its own."""
    return Terminology(
        "family",
        "test",
        "1",
        [
            Concept("A01", "Typhoid and paratyphoid fevers"),
            Concept("A01.0", "Typhoid fever", parents=["A01"]),
            Concept("A01.00", "Typhoid fever, unspecified", parents=["A01.0"]),
            Concept("A01.01", "Typhoid meningitis", parents=["A01.0"]),
            Concept("A01.1", "Paratyphoid fever A", parents=["A01"]),
            Concept("B99", "Other infectious disease"),
            Concept("A01.10", "Paratyphoid fever A, unspecified", parents=["A01.1"]),
        ],
    )


def _index(history: ApprovedHistory, vectors: np.ndarray, words=None, concept_words=None) -> HistoryIndex:
    terminology = _family()
    position = {c.code: i for i, c in enumerate(terminology)}
    parent = np.array([position.get(c.parents[0], -1) if c.parents else -1 for c in terminology])
    return HistoryIndex(history, vectors, position, parent, words, concept_words)


def test_history_features_say_same_target_votes_sibling_and_cousin():
    history = ApprovedHistory(["enteric fever", "other thing", "gone"], [["A01.00"], ["B99"], ["Z99.9"]])
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    index = _index(history, vectors)
    assert len(index.targets[2]) == 0  # a target the terminology no longer has is dropped
    nearest, sims = index.neighbours(np.array([[0.8, 0.6]], np.float32))
    assert nearest.shape == (1, min(NEIGHBOURS, 3)) and sims[0, 0] == pytest.approx(0.96)
    assert list(index.targets_of(nearest[0])) == [2, 5]
    pool = np.array([2, 3, 6, 4, 5, 0])  # A01.00 itself, its sibling, a cousin, an uncle, B99, the category
    features = index.features(pool, nearest[0], sims[0])
    by_code = dict(zip(["A01.00", "A01.01", "A01.10", "A01.1", "B99", "A01"], features))
    assert by_code["A01.00"][0] == pytest.approx(0.8) and by_code["A01.00"][1] == pytest.approx(0.8 / NEIGHBOURS)
    assert by_code["A01.01"][0] == 0 and by_code["A01.01"][2] == pytest.approx(0.8)  # sibling
    assert by_code["A01.10"][2] == 0 and by_code["A01.10"][3] == pytest.approx(0.8)  # cousin
    assert not by_code["A01.1"].any()
    assert by_code["B99"][0] == pytest.approx(0.6)
    assert not by_code["A01"].any()  # no parent: neither sibling nor cousin of anything


def test_history_round_trips_with_the_vectors_of_its_encoder(tmp_path):
    history = ApprovedHistory(["a", "b"], [["X1"], ["X2", "X3"]])
    history.save(tmp_path, np.eye(2, dtype=np.float32), "enc@1")
    again, vectors, model_id = ApprovedHistory.load(tmp_path)
    assert again == history and model_id == "enc@1" and np.allclose(vectors, np.eye(2))
    assert ApprovedHistory.load(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="one target list"):
        ApprovedHistory(["a"], [])


def test_a_suggester_with_history_offers_what_the_team_approved_for_a_similar_source(tiny_icd, encoder):
    # "sugar disease" shares nothing with any ICD display; the team mapped a near-identical source.
    plain = Suggester(tiny_icd, encoder)
    assert plain.suggest([SourceItem("q", "sugar disease high")], top_k=1)[0][0].code != "E11.65"
    history = ApprovedHistory(["sugar disease high", "high blood pressure"], [["E11.65"], ["I10"]])
    remembering = Suggester(tiny_icd, encoder, history=history)
    top = remembering.suggest([SourceItem("q", "sugar disease high")], top_k=10)[0]
    codes = [s.code for s in top]
    assert "E11.65" in codes
    candidates = remembering.candidates(["sugar disease high"])[0]
    position = [c.code for c in tiny_icd].index("E11.65")
    row = list(candidates.pool).index(position)
    assert candidates.features[row, HISTORY] == pytest.approx(1.0, abs=1e-5)
    assert remembering.history_vectors().shape == (2, len(encoder.encode(["x"])[0]))
    assert plain.history_vectors() is None


def test_approved_history_is_read_with_the_words_spelt_out_as_queries_are(tiny_icd, encoder):
    source = "skl sugar disease high"  # a clipped word the target table never writes (and normalize keeps)
    remembering = Suggester(tiny_icd, encoder, history=ApprovedHistory([source], [["E11.65"]]))
    assert remembering._query_texts([SourceItem("q", source)]) == ["skull sugar disease high"]
    candidates = remembering.candidates([source])[0]
    row = list(candidates.pool).index([c.code for c in tiny_icd].index("E11.65"))
    assert candidates.features[row, HISTORY] == pytest.approx(1.0, abs=1e-5)  # the same source: the same text


def test_word_associations_explain_a_candidates_extra_words_by_the_teams_habits():
    words = lambda text: frozenset(text.split())  # noqa: E731
    sources = [words("postpartum anemia"), words("postpartum sepsis"), words("anemia"), words("sepsis")]
    targets = [words("anemia puerperium"), words("sepsis puerperium"), words("anemia"), words("sepsis")]
    associations = WordAssociations(sources, targets)
    n, prior = len(sources), ASSOCIATION_PRIOR
    rate = (2 + 1) / (n + 1)  # "puerperium" in 2 of 4 targets, smoothed
    expected = np.log(((2 + prior * rate) / (2 + prior)) / rate)
    assert associations.association("postpartum", "puerperium") == pytest.approx(expected)
    assert associations.association("postpartum", "pregnancy") == pytest.approx(np.log(prior / (2 + prior)))
    assert associations.association("never-seen", "puerperium") == 0.0

    query = words("postpartum anemia")
    candidates = [words("anemia puerperium"), words("anemia pregnancy"), words("postpartum anemia")]
    features = associations.features(query, candidates)
    assert features.shape == (3, 4)
    # The team's "postpartum" sources took "puerperium" targets; nothing says "pregnancy".
    assert features[0, 0] > 0 > features[1, 0] and features[0, 1] == features[0, 0]
    # "postpartum" is missing from both: explained by "puerperium" only.
    assert features[0, 2] > features[1, 2]
    assert not features[2].any()  # the exact words: nothing extra, nothing missing


def test_history_features_carry_the_word_associations_when_words_are_given():
    history = ApprovedHistory(["postpartum anemia", "anemia"], [["A01.00"], ["A01.01"]])
    displays = {i: frozenset(c.display.lower().split()) for i, c in enumerate(_family())}
    vectors = np.eye(2, dtype=np.float32)
    index = _index(history, vectors, lambda t: frozenset(t.split()), displays.__getitem__)
    pool = np.array([2, 3])
    nearest, sims = index.neighbours(np.array([[1.0, 0.0]], np.float32))
    query = frozenset({"postpartum"})
    with_words = index.features(pool, nearest[0], sims[0], query, [displays[2], displays[3]])
    without = _index(history, vectors).features(pool, nearest[0], sims[0])
    assert np.allclose(with_words[:, :4], without[:, :4]) and not without[:, 4:].any()
    assert with_words[:, 4:].any()


# -- the speed-ups keep the answers ---------------------------------------------------------------------
def test_top_allowed_and_concept_max_match_the_plain_computations():
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(5000) < 0.7, 0.0, rng.random(5000)).astype(np.float32)
    mask = rng.random(5000) < 0.5
    for depth in (10, 100, 4000):  # 4000: fewer positive allowed scores than asked
        fast = set(_top_allowed(scores, mask, depth))
        assert fast == set(_top(np.where(mask, scores, -2.0), depth)) and len(fast) == depth
    terminology = Terminology(
        "t",
        "test",
        "1",
        [Concept("A", "a", ["a1", "a2"]), Concept("B", "b"), Concept("C", "c", ["c1"]), Concept("D", "d")],
    )
    rows = ConceptRows.of(terminology)
    row_scores = rng.random((3, len(rows.texts))).astype(np.float32)
    assert np.array_equal(rows.concept_max(row_scores), np.maximum.reduceat(row_scores, rows.starts, axis=1))
    assert list(rows.lengths) == [3, 1, 2, 1]


def test_pool_ties_at_the_boundary_go_to_the_first_positions_whatever_the_layout():
    scores = np.array([1, 1, 1, 1, 1, 2], dtype=np.float32)
    assert sorted(_top(scores, 3)) == [0, 1, 5]  # argpartition picked 0, 2, 5
    chunk = np.asfortranarray(np.tile(scores, (4, 1)))  # a query's row strided, as a column-major chunk
    assert sorted(_top_allowed(chunk[2], np.ones(6, bool), 3)) == [0, 1, 5]
    assert sorted(_top_allowed(chunk[2], np.array([1, 0, 1, 1, 1, 1], bool), 3)) == [0, 2, 5]


def test_a_query_ranks_the_same_alone_and_in_a_batch(tiny_icd, encoder, tmp_path, monkeypatch):
    import models.suggest

    # Pools of 3 of the 9 concepts cut through tied scores; chunks of 2 run the two-thread pipeline.
    monkeypatch.setattr(models.suggest, "POOL_DEPTH", 3)
    monkeypatch.setattr(models.suggest, "CHUNK", 2)
    suggester = Suggester(tiny_icd, encoder, cache_dir=tmp_path)
    items = [
        SourceItem("250.00", "Type 2 diabetes without complication"),
        SourceItem("401.9", "Hypertension NOS"),
        SourceItem("x", "diabetes"),
        SourceItem("486", "Pneumonia, organism unspecified"),
        SourceItem("y", "unspecified"),
        SourceItem("z", "zzz no word matches"),
        SourceItem("599.0", "Urinary tract infection"),
    ]
    batched = suggester.suggest(items, top_k=5, where={"billable": "any"})
    alone = [suggester.suggest([item], top_k=5, where={"billable": "any"})[0] for item in items]
    assert [[(s.code, s.score) for s in r] for r in batched] == [[(s.code, s.score) for s in r] for r in alone]
    assert batched[0][0].code == "E11.9" and all(batched)


def test_a_linear_fusion_still_serves(tiny_icd, encoder):
    linear = default_fusion().first
    assert isinstance(linear, LogisticFusion)
    suggester = Suggester(tiny_icd, encoder, fusion=linear)
    assert suggester.search("type 2 diabetes with hyperglycemia", top_k=1)[0].code == "E11.65"
