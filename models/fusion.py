"""Fusion of lexical and semantic evidence into one ranking score.

A fixed 50/50 sum of raw scores treats a 0.6 cosine from MiniLM (a strong match) like a 0.6
character-n-gram cosine (a weak one) and ignores how far a candidate sits behind the query's best.
Here each candidate is described by scale-free features (its score, its gap to the query's best,
its reciprocal rank, per matcher) and a logistic model turns them into P(correct), which is both
the ranking score and a confidence a reviewer can read.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.axes import AXIS_FEATURES

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
    # Where the candidate sits: a deep leaf with many siblings is a finer choice than a shallow one.
    "depth",
    "siblings",
    # "unspecified"/"other" catch-alls: right when the source says so, a frequent default otherwise.
    "unspecified_asked",
    "unspecified_unasked",
    "other_asked",
    "other_unasked",
    "extra_words",  # candidate words the query lacks
    "missing_words",  # query words the candidate lacks
    "query_unspecified",
    # LOINC axes (models.axes; 0 in terminologies without axes): how many axes the source states that
    # the candidate shares / contradicts, and whether the contradiction is the specimen or the property.
    "axes_agree",
    "axes_conflict",
    "system_conflict",
    "property_conflict",
    # Approved history (a retrained model's memory of the team's mappings; 0 without one): the best
    # similarity of a neighbouring approved source whose target is this candidate, the
    # similarity-weighted votes for it, and the best neighbour whose target is a sibling / cousin.
    "history_same",
    "history_votes",
    "history_sibling",
    "history_cousin",
    # ... and how well the history's word associations explain the candidate's extra words and
    # the query's missing words (mean, least): see history.WordAssociations.
    "history_extra_explained",
    "history_extra_least",
    "history_missing_explained",
    "history_missing_least",
    # Word coverage weighted by how rare each word is in the target table's names (its inverse document
    # frequency): the query's words the table knows that the candidate holds, and the candidate's words
    # the query holds. A missing "LDL" or an added "bone" weighs more than a missing "Qn" (a word no
    # name uses) or an added "serum" (a word half the names use). 0 where the fusion does not read them.
    "query_coverage_weighted",
    "concept_coverage_weighted",
)
HISTORY_FEATURES = 8
WEIGHTED_COVERAGE = ("query_coverage_weighted", "concept_coverage_weighted")
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
    depth: np.ndarray | None = None  # ancestors above the candidate
    siblings: np.ndarray | None = None  # children of the candidate's parent
    history: np.ndarray | None = None  # (pool x HISTORY_FEATURES), see ApprovedHistory
    axes: np.ndarray | None = None  # (pool x AXIS_FEATURES), see models.axes
    word_weights: Mapping[str, float] | None = None  # the table's words, by rarity (see WEIGHTED_COVERAGE)


def _reciprocal_rank(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (_RR_OFFSET + ranks) * (_RR_OFFSET + 1)  # 1.0 for the best candidate


def _word_counts(query: frozenset[str], concepts: list[frozenset[str]]) -> np.ndarray:
    """(candidates x 5): shared words, concept words, unasked qualifiers, "unspecified", "other".

    One pass over the pool: word features were a tenth of a query's ranking time as five passes.
    """
    rows = [
        (len(query & words), len(words), len((words & _QUALIFIERS) - query), "unspecified" in words, "other" in words)
        for words in concepts
    ]
    return np.array(rows, dtype=np.float32).reshape(len(concepts), 5)


def _weighted_coverage(
    query: frozenset[str], concepts: list[frozenset[str]], weights: Mapping[str, float]
) -> np.ndarray:
    """(candidates x 2): the weight of the query's known words the candidate holds, over theirs and over
    the candidate's own words' weight (words the table never writes weigh nothing)."""
    known = {word: weights[word] for word in query if word in weights}
    asked = sum(known.values())
    rows = []
    for words in concepts:
        shared = sum(weight for word, weight in known.items() if word in words)
        own = sum(weights.get(word, 0.0) for word in words)
        rows.append((shared / asked if asked else 0.0, shared / own if own else 0.0))
    return np.array(rows, dtype=np.float32).reshape(len(concepts), 2)


def word_weights(texts: Sequence[list[str]]) -> dict[str, float]:
    """Each word's inverse document frequency over a table's names (each name its list of words)."""
    counts: dict[str, int] = {}
    for words in texts:
        for word in set(words):
            counts[word] = counts.get(word, 0) + 1
    return {word: float(np.log(len(texts) / count)) for word, count in counts.items()}


def candidate_features(evidence: CandidateEvidence) -> np.ndarray:
    """(candidates x FEATURES) for one query's pool."""
    lexical, semantic = evidence.lexical, evidence.semantic
    lexical_rr = _reciprocal_rank(lexical)
    semantic_rr = _reciprocal_rank(semantic)
    query = evidence.query_words
    shared, sizes, unasked, unspecified, other = _word_counts(query, evidence.concept_words).T
    concept_coverage, query_coverage = shared / np.maximum(sizes, 1), shared / max(len(query), 1)
    extra, missing = sizes - shared, len(query) - shared
    n = len(lexical)
    query_unspecified = float("unspecified" in query)
    query_other = float("other" in query)
    history = evidence.history if evidence.history is not None else np.zeros((n, HISTORY_FEATURES), np.float32)
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
            unasked,
            _or_zeros(evidence.depth, n),
            np.log1p(_or_zeros(evidence.siblings, n)),
            unspecified * query_unspecified,
            unspecified * (1 - query_unspecified),
            other * query_other,
            other * (1 - query_other),
            extra,
            missing,
            np.full(n, query_unspecified, dtype=np.float32),
            evidence.axes if evidence.axes is not None else np.zeros((n, AXIS_FEATURES), np.float32),
            history,
            _weighted_coverage(query, evidence.concept_words, evidence.word_weights)
            if evidence.word_weights is not None
            else np.zeros((n, len(WEIGHTED_COVERAGE)), np.float32),
        ]
    ).astype(np.float32)


def _or_zeros(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, np.float32) if values is None else np.asarray(values, dtype=np.float32)


@functools.cache
def _openmp_controller():
    """Found once: threadpoolctl's discovery of native libraries costs ~3.5 ms a call."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


RIVAL_FLOOR = -8.0  # a pool of one has no rival: as if the next were hopeless


def rival_logit(logits: np.ndarray) -> float:
    """How strong the best candidate's rivals are together: log-sum-exp of the other logits, so two
    close rivals weigh more than one (RIVAL_FLOOR where there is none, or it is lower)."""
    if len(logits) < 2:
        return RIVAL_FLOOR
    others = np.delete(logits, int(np.argmax(logits)))
    return max(float(np.logaddexp.reduce(others)), RIVAL_FLOOR)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))


@functools.cache
def _columns(names: tuple[str, ...]) -> np.ndarray | None:
    """Where a fusion's features sit among FEATURES (None: all of them, in order). A fusion fitted before
    a feature was added reads its own columns; one naming a feature this code lacks cannot be read."""
    if names == FEATURES:
        return None
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(f"fitted on other features than this crosswalk computes: {', '.join(unknown)}")
    return np.array([FEATURES.index(name) for name in names])


def select_features(features: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The columns of a (candidates x FEATURES) array that a fusion of these feature names reads."""
    columns = _columns(names)
    return features if columns is None else features[:, columns]


def _read_features(data: dict) -> tuple[str, ...]:
    names = tuple(data.get("features") or ())
    try:
        _columns(names)
    except ValueError as error:
        raise ValueError(f"fusion {data.get('version')!r} was {error}") from error
    return names


@dataclass
class LogisticFusion:
    """P(candidate is correct) = sigmoid(features . coef + intercept)."""

    coef: np.ndarray
    intercept: float
    version: str
    features: tuple[str, ...] = FEATURES  # what it was fitted on, by name

    def __post_init__(self) -> None:
        if len(self.coef) != len(self.features):
            raise ValueError(f"fusion {self.version!r}: {len(self.coef)} weights for {len(self.features)} features")

    def reads(self, name: str) -> bool:
        return name in self.features

    def logit(self, features: np.ndarray) -> np.ndarray:
        return select_features(features, self.features) @ self.coef + self.intercept

    def score(self, features: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit(features))

    def score_pools(self, pools: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.score(features) for features in pools]

    def with_platt(self, a: float, b: float) -> LogisticFusion:
        """Platt scaling folded into the weights: a positive rescaling keeps every ranking."""
        return LogisticFusion(self.coef * a, self.intercept * a + b, f"{self.version}-platt", self.features)

    @classmethod
    def fit(
        cls, rows: np.ndarray, labels: np.ndarray, version: str, C: float = 1.0, features: tuple[str, ...] = FEATURES
    ) -> LogisticFusion:
        """Fitted on `rows`, whose columns are `features`."""
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=2000).fit(rows, labels)
        return cls(model.coef_[0].astype(np.float32), float(model.intercept_[0]), version, features)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "features": list(self.features),
                "coef": [round(float(c), 6) for c in self.coef],
                "intercept": round(self.intercept, 6),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> LogisticFusion:
        data = json.loads(text)
        features = _read_features(data)
        return cls(np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]), data["version"], features)


@dataclass
class TreeEnsemble:
    """Several tree fits, each on part of the data, read as one: the mean of their logits.

    One fit of the trees on a small domain is a lottery: on the lab names, five tree seeds put the
    vendor-name (LIVD) acc@1 anywhere from 0.33 to 0.44; five cross-fitted fits averaged hold it near
    0.47 and let every query calibrate the score out of fold (training.evaluate.fit_labelled).
    """

    members: list[Any]  # fitted sklearn classifiers with decision_function over FEATURES

    @property
    def n_features_in_(self) -> int:
        return int(self.members[0].n_features_in_)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.mean([member.decision_function(features) for member in self.members], axis=0)


@dataclass
class RerankedFusion:
    """A linear fusion ranks the whole pool; gradient-boosted trees re-rank its top `depth`.

    Trees see interactions a linear model cannot (an "unspecified" target is right for one query
    and a poor default for another; history votes matter more when the matchers disagree): on the
    GEM train split (4-fold CV by code) they raise acc@10 from 0.843 to 0.86. They cost ~6 us a
    candidate plus ~2 ms a call, so they score only the linear top `depth` and a whole chunk of
    queries in one call (`score_pools`).
    """

    first: LogisticFusion
    trees: Any  # a fitted sklearn HistGradientBoostingClassifier over FEATURES, or a TreeEnsemble of them
    depth: int
    version: str
    # The served confidence is sigmoid(a * tree logit + b + c * the pool's rival logit): a best
    # candidate with close rivals is right less often than one alone at the same score (near-identical
    # LOINC codes, one chosen per vendor). The term is the same for the whole pool, so
    # it never changes a ranking. (a, b) alone, as older fusions store it, means c = 0.
    platt: tuple[float, ...] = (1.0, 0.0)
    features: tuple[str, ...] = FEATURES  # what the trees were fitted on, by name

    def reads(self, name: str) -> bool:
        return name in self.features or self.first.reads(name)

    def score(self, features: np.ndarray) -> np.ndarray:
        return self.score_pools([features])[0]

    def score_pools(self, pools: Sequence[np.ndarray]) -> list[np.ndarray]:
        firsts = [self.first.score(features) for features in pools]
        tops = [np.argsort(-first, kind="stable")[: self.depth] for first in firsts]
        logits = self.tree_logits([features[top] for features, top in zip(pools, tops)])
        a, b, c = (*self.platt, 0.0)[:3]
        out = []
        for first, top, logit in zip(firsts, tops, logits):
            reranked = _sigmoid(a * logit + b + (c * rival_logit(logit) if c else 0.0))
            # Below the re-ranked candidates, in the linear order: shown only when top_k > depth.
            scores = first * (reranked.min() if len(reranked) else 1.0) * 0.999
            scores[top] = reranked
            out.append(scores)
        return out

    def tree_logits(self, pools: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The trees' logit per candidate, one call for all pools (the per-call cost dominates)."""
        sizes = [len(p) for p in pools]
        if not sum(sizes):
            return [np.zeros(0) for _ in pools]
        # One OpenMP thread: the encoder of the next chunk runs beside this (suggest.py's pipeline),
        # and spinning tree threads would take its core (batch: 170 -> 200 terms/s on 2 cores).
        with _openmp_controller().limit(limits=1, user_api="openmp"):
            logit = self.trees.decision_function(select_features(np.vstack(pools), self.features))
        return np.split(logit, np.cumsum(sizes)[:-1])

    def with_platt(self, a: float, b: float, c: float = 0.0) -> RerankedFusion:
        platt = (a, b, c) if c else (a, b)
        return RerankedFusion(self.first, self.trees, self.depth, f"{self.version}-platt", platt, self.features)

    def save(self, path: Path) -> None:
        import joblib
        import sklearn

        joblib.dump(
            {
                "version": self.version,
                "features": list(self.features),
                "sklearn": sklearn.__version__,
                "first": json.loads(self.first.to_json()),
                "trees": self.trees,
                "depth": self.depth,
                "platt": list(self.platt),
            },
            path,
            compress=3,
        )

    @classmethod
    def load(cls, path: Path) -> RerankedFusion:
        import joblib
        import sklearn

        try:
            data = joblib.load(path)
        except Exception as error:  # a pickle from another scikit-learn can fail in many ways
            raise ValueError(f"{path}: cannot read the fusion ({error}); refit it with this scikit-learn") from error
        features = _read_features(data)
        if data.get("sklearn", "").split(".")[:2] != sklearn.__version__.split(".")[:2]:
            warnings.warn(f"fusion {data['version']} was saved with scikit-learn {data.get('sklearn')}", stacklevel=2)
        first = LogisticFusion.from_json(json.dumps(data["first"]))
        return cls(first, data["trees"], int(data["depth"]), data["version"], tuple(data["platt"]), features)


Fusion = LogisticFusion | RerankedFusion
LINEAR_FILE, RERANKED_FILE = "fusion.json", "fusion.joblib"


def save_fusion(fusion: Fusion, folder: Path) -> Path:
    """Write a fusion into a model folder (the file name says which kind)."""
    if isinstance(fusion, RerankedFusion):
        path = folder / RERANKED_FILE
        fusion.save(path)
    else:
        path = folder / LINEAR_FILE
        path.write_text(fusion.to_json() + "\n")
    return path


def load_fusion(folder: Path) -> Fusion:
    if (folder / RERANKED_FILE).exists():
        return RerankedFusion.load(folder / RERANKED_FILE)
    if (folder / LINEAR_FILE).exists():
        return LogisticFusion.from_json((folder / LINEAR_FILE).read_text())
    raise ValueError(f"{folder} holds no fusion ({RERANKED_FILE} or {LINEAR_FILE})")


# The shipped fusion: fitted on the GEM and lab train splits by `python -m training.fusion`. A pickled
# scikit-learn model, hence scikit-learn's pin in pyproject.toml. A terminology format with a
# fusion of its own in a subfolder (`loinc/`: fitted on the lab train split alone) ranks with that one.
DEFAULT_FUSION_DIR = Path(__file__).parent / "fusion_default"


def default_fusion(terminology_format: str | None = None) -> Fusion:
    """The shipped fusion for targets of `terminology_format` (the shared one where it has none)."""
    own = DEFAULT_FUSION_DIR / terminology_format if terminology_format else None
    if own is not None and own.is_dir():
        return load_fusion(own)
    return load_fusion(DEFAULT_FUSION_DIR)
