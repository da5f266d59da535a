"""Fusion of lexical and semantic evidence into one ranking score.

A fixed 50/50 sum of raw scores treats a 0.6 cosine from MiniLM (a strong match) like a 0.6
character-n-gram cosine (a weak one) and ignores how far a candidate sits behind the query's best.
Here each candidate is described by scale-free features (its score, its gap to the query's best,
its reciprocal rank, per matcher) and a logistic model turns them into P(correct), which is both
the ranking score and a confidence a reviewer can read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = (
    "lexical",
    "semantic",
    "lexical_gap",
    "semantic_gap",
    "lexical_rr",
    "semantic_rr",
    "agreement",
    "parent_lexical",
    "parent_semantic",
    "ancestor_lexical",
    "ancestor_semantic",
    "concept_coverage",
    "query_coverage",
    "unasked_qualifiers",
)
_RR_OFFSET = 10.0  # reciprocal-rank smoothing: ranks 1 and 2 differ more than 30 and 31
_STOPWORDS = frozenset("of and or the a an in on to for by as at due".split())
# Detail a source rarely states unless it means it: a target that adds one of these (a side, a
# later encounter) is a worse default than its "unspecified"/"initial encounter" sibling.
_QUALIFIERS = frozenset("left right bilateral sequela subsequent".split())


def content_words(normalized_text: str) -> frozenset[str]:
    return frozenset(w for w in normalized_text.split() if w not in _STOPWORDS)


@dataclass(frozen=True)
class CandidateEvidence:
    """What fusion sees of one query's candidate pool (arrays aligned with the pool)."""

    lexical: np.ndarray
    semantic: np.ndarray
    parent_lexical: np.ndarray  # the candidate's parent concept's scores (0 without a parent)
    parent_semantic: np.ndarray
    # Best score among all ancestors: inclusion terms often sit on the category ("senile
    # cataract" under H25), so a query can match a leaf through its category.
    ancestor_lexical: np.ndarray
    ancestor_semantic: np.ndarray
    query_words: frozenset[str]
    concept_words: list[frozenset[str]]


def _reciprocal_rank(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (_RR_OFFSET + ranks) * (_RR_OFFSET + 1)  # 1.0 for the best candidate


def _coverage(query: frozenset[str], concepts: list[frozenset[str]]) -> tuple[np.ndarray, np.ndarray]:
    shared = np.array([len(query & words) for words in concepts], dtype=np.float32)
    concept_sizes = np.array([max(len(words), 1) for words in concepts], dtype=np.float32)
    return shared / concept_sizes, shared / max(len(query), 1)


def candidate_features(evidence: CandidateEvidence) -> np.ndarray:
    """(candidates x FEATURES) for one query's pool."""
    lexical, semantic = evidence.lexical, evidence.semantic
    lexical_rr = _reciprocal_rank(lexical)
    semantic_rr = _reciprocal_rank(semantic)
    concept_coverage, query_coverage = _coverage(evidence.query_words, evidence.concept_words)
    unasked = [len((words & _QUALIFIERS) - evidence.query_words) for words in evidence.concept_words]
    return np.column_stack(
        [
            lexical,
            semantic,
            lexical - lexical.max(),
            semantic - semantic.max(),
            lexical_rr,
            semantic_rr,
            lexical_rr * semantic_rr,  # both matchers rank it high: the strongest single signal
            evidence.parent_lexical,
            evidence.parent_semantic,
            evidence.ancestor_lexical,
            evidence.ancestor_semantic,
            concept_coverage,
            query_coverage,
            np.asarray(unasked, dtype=np.float32),
        ]
    ).astype(np.float32)


@dataclass
class LogisticFusion:
    """P(candidate is correct) = sigmoid(features . coef + intercept)."""

    coef: np.ndarray
    intercept: float
    version: str

    def score(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)))

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, version: str, C: float = 1.0) -> LogisticFusion:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=1000).fit(features, labels)
        return cls(model.coef_[0].astype(np.float32), float(model.intercept_[0]), version)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "features": list(FEATURES),
                "coef": [round(float(c), 6) for c in self.coef],
                "intercept": round(self.intercept, 6),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> LogisticFusion:
        data = json.loads(text)
        if data.get("features") != list(FEATURES):
            raise ValueError(f"fusion {data.get('version')!r} was fitted on other features")
        return cls(np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]), data["version"])


DEFAULT_FUSION_PATH = Path(__file__).with_name("fusion_default.json")


def default_fusion() -> LogisticFusion:
    return LogisticFusion.from_json(DEFAULT_FUSION_PATH.read_text())
