from dataclasses import replace

import numpy as np
import pytest

from models.fusion import (
    FEATURES,
    WEIGHTED_COVERAGE,
    CandidateEvidence,
    LogisticFusion,
    candidate_features,
    content_words,
    default_fusion,
    word_weights,
)
from models.items import SourceItem
from models.lexical import LexicalMatcher
from models.rows import ConceptRows
from models.suggest import Suggester


@pytest.fixture
def suggester(tiny_icd, encoder, tmp_path):
    return Suggester(tiny_icd, encoder, cache_dir=tmp_path)


def test_ranks_the_obvious_target_first(suggester):
    [ranked] = suggester.suggest([SourceItem("250.00", "Type 2 diabetes without complication")], top_k=3)
    assert ranked[0].code == "E11.9"
    assert [s.rank for s in ranked] == [1, 2, 3]
    assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_expands_abbreviations_before_matching(suggester):
    [ranked] = suggester.suggest([SourceItem("162.9", "Mal neo bronch/lung NOS")], top_k=1)
    assert ranked[0].code == "C34.90"


def test_word_order_does_not_matter(suggester):
    [ranked] = suggester.suggest([SourceItem("x", "fever paratyphoid unspecified")], top_k=1)
    assert ranked[0].code == "A01.4"


def test_evidence_names_the_matched_synonym(suggester):
    [ranked] = suggester.suggest([SourceItem("401.9", "high blood pressure")], top_k=1)
    best = ranked[0]
    assert best.code == "I10"
    assert best.evidence["matched_text"] == "high blood pressure"
    assert best.evidence["matched_synonym"] is True
    assert 0 < best.evidence["lexical"] <= 1 and 0 < best.evidence["semantic"] <= 1.0001


def test_restricts_by_attribute_and_skips_inactive(suggester):
    [ranked] = suggester.suggest([SourceItem("x", "Type 2 diabetes mellitus")], top_k=10, where={"billable": True})
    codes = [s.code for s in ranked]
    assert "E11" not in codes  # a category is not billable
    assert "Z99.9" not in codes  # retired
    assert set(codes) <= {"E11.9", "E11.65", "I10", "J18.9", "A01.4", "C34.90", "N39.0"}


def test_filter_matching_nothing_is_a_clear_error(suggester):
    with pytest.raises(ValueError, match="no concept of tiny-icd matches"):
        suggester.suggest([SourceItem("x", "anything")], where={"billable": "maybe"})


def test_context_is_never_matched_as_the_name(suggester):
    item = SourceItem("GLU", "Glucose", {"specimen": "Serum", "unit": "mg/dL", "frequency": "12"})
    assert item.query_text() == "Glucose"  # specimen and unit are evidence about LOINC axes (models.axes)


def test_concept_embeddings_are_encoded_once_per_model(tiny_icd, encoder, tmp_path):
    Suggester(tiny_icd, encoder, cache_dir=tmp_path)
    assert encoder.calls == 1
    restarted = type(encoder)()  # a new process: same model id, nothing in memory
    Suggester(tiny_icd, restarted, cache_dir=tmp_path)
    assert restarted.calls == 0
    assert list((tmp_path / "embeddings").glob("*/*.npy"))
    assert list((tmp_path / "lexical").glob("*.pkl"))


def test_search_uses_the_same_ranking(suggester):
    assert suggester.search("urinary tract infection", top_k=1)[0].code == "N39.0"


def test_concept_max_takes_each_concepts_best_row(tiny_icd):
    rows = ConceptRows.of(tiny_icd)
    scores = np.zeros((1, len(rows.texts)), dtype=np.float32)
    synonym_row = rows.texts.index("high blood pressure")
    scores[0, synonym_row] = 0.9
    per_concept = rows.concept_max(scores)
    assert per_concept.shape == (1, len(tiny_icd))
    assert per_concept[0, [c.code for c in tiny_icd].index("I10")] == pytest.approx(0.9)
    zeros = np.zeros_like(scores[0])
    assert rows.best_row(zeros, scores[0], [c.code for c in tiny_icd].index("I10")) == synonym_row


def test_lexical_matcher_scores_rows_by_cosine():
    matcher = LexicalMatcher().fit(["chronic kidney disease", "acute kidney failure", "asthma"])
    scores = matcher.row_scores(["Chr kidney dis"])[0]
    assert scores.argmax() == 0
    assert scores[0] == pytest.approx(1.0, abs=1e-5)  # identical after abbreviation expansion


def _evidence(lexical, semantic, words=None, query="femur fracture"):
    n = len(lexical)
    return CandidateEvidence(
        lexical=np.asarray(lexical, dtype=np.float32),
        semantic=np.asarray(semantic, dtype=np.float32),
        parent_lexical=np.zeros(n, np.float32),
        parent_semantic=np.zeros(n, np.float32),
        ancestor_lexical=np.zeros(n, np.float32),
        ancestor_semantic=np.zeros(n, np.float32),
        query_words=content_words(query),
        concept_words=[content_words(w) for w in (words or ["femur fracture"] * n)],
        depth=np.full(n, 4),  # where ICD-10-CM leaves sit: the shipped fusion was fitted on them
        siblings=np.full(n, 6),
    )


def test_fusion_prefers_agreement_over_one_loud_matcher():
    # Candidate 0: both matchers like it. Candidate 1: lexical loves it, semantic does not.
    features = candidate_features(_evidence([0.80, 0.85, 0.3], [0.75, 0.40, 0.3]))
    assert features.shape == (3, len(FEATURES))
    # The linear stage ranks the pool; the trees, fitted on lab names too (where a name's spelling is
    # the stronger signal), may re-order two close candidates, so the preference is asserted there.
    assert default_fusion().first.score(features).argmax() == 0
    scores = default_fusion().score(features)
    assert scores[2] < scores[:2].min() and ((scores > 0) & (scores < 1)).all()


def test_word_coverage_weighs_a_rare_word_more_than_a_common_one():
    """ "LDL cholesterol": the plain cholesterol code lacks "ldl", a word three names in a thousand use,
    and a missing "qn" is no evidence at all where no name uses it."""
    weights = {"cholesterol": 2.0, "ldl": 5.0, "serum": 0.5}
    evidence = _evidence([0.8, 0.8], [0.8, 0.8], ["cholesterol serum", "cholesterol ldl serum"], "ldl cholesterol qn")
    plain = candidate_features(evidence)[:, [FEATURES.index(f) for f in WEIGHTED_COVERAGE]]
    assert plain.tolist() == [[0.0, 0.0], [0.0, 0.0]]  # no table weights given: the features stay 0
    weighted = candidate_features(replace(evidence, word_weights=weights))
    query, concept = (weighted[:, FEATURES.index(f)] for f in WEIGHTED_COVERAGE)
    assert query == pytest.approx([2 / 7, 1.0]) and concept == pytest.approx([2 / 2.5, 7 / 7.5])
    assert word_weights([["ldl", "cholesterol"], ["cholesterol"]]) == pytest.approx(
        {"ldl": np.log(2), "cholesterol": 0.0}
    )


def test_a_fusion_fitted_before_a_feature_was_added_reads_its_own_columns(tmp_path):
    """The shipped shared fusion predates the weighted coverage: it must score exactly as it did."""
    older = FEATURES[: -len(WEIGHTED_COVERAGE)]
    rng = np.random.default_rng(0)
    fusion = LogisticFusion(rng.random(len(older)).astype(np.float32), 0.1, "older", older)
    features = rng.random((5, len(FEATURES))).astype(np.float32)
    assert fusion.score(features) == pytest.approx(1 / (1 + np.exp(-(features[:, : len(older)] @ fusion.coef + 0.1))))
    again = LogisticFusion.from_json(fusion.to_json())
    assert again.features == older and not again.reads("concept_coverage_weighted")
    assert again.score(features) == pytest.approx(fusion.score(features))
    with pytest.raises(ValueError, match="35 weights for 37 features"):
        LogisticFusion(fusion.coef, 0.1, "unnamed")  # weights of fewer features than it says it reads


def test_the_table_words_are_weighed_only_for_a_fusion_that_reads_them(tiny_icd, encoder, tmp_path):
    older = FEATURES[: -len(WEIGHTED_COVERAGE)]
    for fusion, weighed in (
        (LogisticFusion(np.zeros(len(older), np.float32), 0.0, "older", older), False),
        (LogisticFusion(np.zeros(len(FEATURES), np.float32), 0.0, "newer"), True),
    ):
        suggester = Suggester(tiny_icd, encoder, cache_dir=tmp_path, fusion=fusion)
        [pool] = suggester.candidates([SourceItem("x", "Type 2 diabetes mellitus")])
        columns = pool.features[:, [FEATURES.index(f) for f in WEIGHTED_COVERAGE]]
        assert (suggester._word_weights is not None) is weighed and bool(columns.any()) is weighed


def test_fusion_prefers_the_unspecified_sibling_when_no_side_is_given():
    words = ["fracture of right femur sequela", "fracture of unspecified femur initial encounter"]
    features = candidate_features(_evidence([0.7, 0.7], [0.8, 0.8], words, query="fracture of femur"))
    unasked = features[:, FEATURES.index("unasked_qualifiers")]
    assert list(unasked) == [2.0, 0.0]
    assert default_fusion().score(features).argmax() == 1


def test_loinc_targets_rank_with_their_own_fusion_and_other_formats_with_the_shared_one():
    assert default_fusion("loinc").version.startswith("fusion-labs-")
    assert default_fusion("icd10cm").version == default_fusion().version != default_fusion("loinc").version
    features = candidate_features(_evidence([0.80, 0.85, 0.3], [0.75, 0.40, 0.3]))
    scores = default_fusion("loinc").score(features)
    assert scores[2] < scores[:2].min() and ((scores > 0) & (scores < 1)).all()


def test_fusion_round_trips_and_refuses_other_features():
    fusion = LogisticFusion.fit(
        np.random.default_rng(0).random((40, len(FEATURES))), np.arange(40) % 2, version="test-1"
    )
    again = LogisticFusion.from_json(fusion.to_json())
    assert again.version == "test-1" and np.allclose(again.coef, fusion.coef, atol=1e-5)
    with pytest.raises(ValueError, match="other features"):
        LogisticFusion.from_json(fusion.to_json().replace('"lexical_gap"', '"length"'))
