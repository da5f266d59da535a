"""Ranked, explainable mapping suggestions: lexical + semantic matchers, fused per candidate."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.dense import DenseMatcher, TextEncoder
from models.fusion import (
    CandidateEvidence,
    LogisticFusion,
    candidate_features,
    candidate_pool,
    content_words,
    default_fusion,
)
from models.items import SourceItem, Suggestion
from models.lexical import LexicalMatcher
from models.rows import ConceptRows
from models.terminology import Concept, Terminology, attributes_match
from models.text import normalize

POOL_DEPTH = 100  # candidates each matcher contributes per query before fusion
CHUNK = 128  # queries scored together: bounds the (queries x rows) score arrays to ~60 MB


@dataclass
class _Scores:
    lexical: np.ndarray  # (queries x concepts), before any filter: parents need their scores too
    semantic: np.ndarray
    lexical_rows: np.ndarray  # (queries x rows), for the matched-synonym evidence
    semantic_rows: np.ndarray
    query_words: list[frozenset[str]]


@dataclass(frozen=True)
class Candidates:
    """One query's candidate pool as fusion sees it (also the training data of a fusion)."""

    pool: np.ndarray  # concept positions
    features: np.ndarray  # (pool x FEATURES)


class Suggester:
    """Fits both matchers on a terminology once (cached on disk), then ranks any source items."""

    def __init__(
        self,
        terminology: Terminology,
        encoder: TextEncoder,
        cache_dir: Path | None = None,
        fusion: LogisticFusion | None = None,
        lexical: LexicalMatcher | None = None,
        progress: bool = False,
    ):
        self.terminology = terminology
        self.rows = ConceptRows.of(terminology)
        self.fusion = fusion or default_fusion()
        self.lexical = lexical or LexicalMatcher().fit_cached(self.rows.texts, cache_dir)
        self.dense = DenseMatcher(encoder, cache_dir).fit(self.rows.texts, progress=progress)
        self.model_version = f"{encoder.model_id}+tfidf-char3-5+{self.fusion.version}"
        self._parent = _parent_positions(terminology)
        self._ancestors = _ancestor_positions(self._parent)
        self._display_words = [content_words(normalize(c.display)) for c in terminology]
        self._masks: dict[tuple, np.ndarray] = {}

    # -- public -------------------------------------------------------------------------------
    def allowed(self, where: dict[str, Any] | None = None, active_only: bool = True) -> np.ndarray:
        """Boolean mask of concepts a search may return (attribute filter, active concepts)."""
        wanted = where or {}
        return np.fromiter(
            ((c.active or not active_only) and attributes_match(c, wanted) for c in self.terminology),
            dtype=bool,
            count=len(self.terminology),
        )

    def suggest(
        self,
        items: Sequence[SourceItem],
        top_k: int = 10,
        where: dict[str, Any] | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> list[list[Suggestion]]:
        mask = self._mask(where)
        results: list[list[Suggestion]] = []
        for chunk in _chunks(list(items), CHUNK):
            scores = self._score([item.query_text() for item in chunk])
            for query in range(len(chunk)):
                candidates = self._candidates(scores, query, mask)
                results.append(self._rank(candidates, scores, query, top_k))
            if on_chunk:
                on_chunk(len(chunk))
        return results

    def search(self, text: str, top_k: int = 10, where: dict[str, Any] | None = None) -> list[Suggestion]:
        """A reviewer's concept search: the same ranking for one free-text query."""
        return self.suggest([SourceItem(code="", text=text)], top_k, where)[0]

    def candidates(self, texts: Sequence[str], where: dict[str, Any] | None = None) -> list[Candidates]:
        """Candidate pools with fusion features, for fitting a fusion on labelled mappings."""
        mask = self._mask(where)
        out: list[Candidates] = []
        for chunk in _chunks(list(texts), CHUNK):
            scores = self._score(chunk)
            out.extend(self._candidates(scores, q, mask) for q in range(len(chunk)))
        return out

    # -- internals ----------------------------------------------------------------------------
    def _mask(self, where: dict[str, Any] | None) -> np.ndarray:
        # Walking 98k concepts in Python costs ~50 ms: once per filter, not once per query.
        key = tuple(sorted((where or {}).items(), key=lambda kv: kv[0]))
        if key not in self._masks:
            mask = self.allowed(where)
            if not mask.any():
                raise ValueError(f"no concept of {self.terminology.name} matches the filter {where}")
            self._masks[key] = mask
        return self._masks[key]

    def _score(self, texts: list[str]) -> _Scores:
        lexical_rows = self.lexical.row_scores(texts)
        semantic_rows = self.dense.row_scores(self.dense.encode_queries(texts))
        return _Scores(
            self.rows.concept_max(lexical_rows),
            self.rows.concept_max(semantic_rows),
            lexical_rows,
            semantic_rows,
            [content_words(normalize(t)) for t in texts],
        )

    def _candidates(self, scores: _Scores, query: int, mask: np.ndarray) -> Candidates:
        lexical, semantic = scores.lexical[query], scores.semantic[query]
        pool = candidate_pool(np.where(mask, lexical, -2.0), np.where(mask, semantic, -2.0), POOL_DEPTH)
        pool = pool[mask[pool]]
        parents = self._parent[pool]
        has_parent = parents >= 0
        ancestors = self._ancestors[pool]  # (pool x depth), -1 padded
        padded = ancestors >= 0
        evidence = CandidateEvidence(
            lexical=lexical[pool],
            semantic=semantic[pool],
            parent_lexical=np.where(has_parent, lexical[parents], 0.0),
            parent_semantic=np.where(has_parent, semantic[parents], 0.0),
            ancestor_lexical=np.where(padded, lexical[ancestors], 0.0).max(axis=1, initial=0.0),
            ancestor_semantic=np.where(padded, semantic[ancestors], 0.0).max(axis=1, initial=0.0),
            query_words=scores.query_words[query],
            concept_words=[self._display_words[i] for i in pool],
        )
        return Candidates(pool, candidate_features(evidence))

    def _rank(self, candidates: Candidates, scores: _Scores, query: int, top_k: int) -> list[Suggestion]:
        fused = self.fusion.score(candidates.features)
        best = np.argsort(-fused, kind="stable")[:top_k]
        return [
            self._suggestion(int(candidates.pool[j]), float(fused[j]), rank, scores, query)
            for rank, j in enumerate(best, start=1)
        ]

    def _suggestion(self, position: int, fused: float, rank: int, scores: _Scores, query: int) -> Suggestion:
        concept: Concept = self.terminology.concepts[position]
        row = self.rows.best_row(scores.lexical_rows[query], scores.semantic_rows[query], position)
        matched = self.rows.texts[row]
        return Suggestion(
            code=concept.code,
            display=concept.display,
            score=round(fused, 4),
            rank=rank,
            evidence={
                "lexical": round(float(scores.lexical[query, position]), 4),
                "semantic": round(float(scores.semantic[query, position]), 4),
                "matched_text": matched,
                "matched_synonym": matched != concept.display,
                "fusion": self.fusion.version,
            },
        )


def _parent_positions(terminology: Terminology) -> np.ndarray:
    """Concept position -> its first parent's position (-1: none, or not in this terminology)."""
    position = {c.code: i for i, c in enumerate(terminology)}
    return np.fromiter(
        (position.get(c.parents[0], -1) if c.parents else -1 for c in terminology),
        dtype=np.int64,
        count=len(terminology),
    )


def _ancestor_positions(parent: np.ndarray, max_depth: int = 8) -> np.ndarray:
    """(concepts x max_depth) ancestor positions, nearest first, padded with -1."""
    out = np.full((len(parent), max_depth), -1, dtype=np.int64)
    current = parent.copy()
    for level in range(max_depth):
        out[:, level] = current
        current = np.where(current >= 0, parent[np.maximum(current, 0)], -1)
    return out


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
