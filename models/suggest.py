"""Ranked, explainable mapping suggestions: lexical + semantic matchers, fused per candidate."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.axes import FORM_WORDS, NO_AXES, Axes, axis_features, concept_axes, source_axes, specimen_group
from models.dense import DenseMatcher, TextEncoder
from models.fusion import (
    FEATURES,
    WEIGHTED_COVERAGE,
    CandidateEvidence,
    Fusion,
    candidate_features,
    content_words,
    default_fusion,
    word_weights,
)
from models.history import ApprovedHistory, HistoryIndex
from models.items import SourceItem, Suggestion
from models.lexical import LexicalMatcher
from models.rows import ConceptRows
from models.terminology import Concept, Terminology, attributes_match, target_filters
from models.text import (
    LAB_ABBREVIATIONS,
    LAB_MNEMONICS,
    acids_as_anions,
    clinical_abbreviations,
    expand_unknown,
    fold_words,
    known_phrases,
    normalize,
    table_acids,
    without_reflex,
)


def _bare_mnemonic(text: str) -> str | None:
    """A lab name that is one mnemonic beside specimen and form words ("K", "UA-PRO", "CK, TOTAL"),
    spelt out; else None."""
    words = fold_words(text)
    analyte = [word for word in words if specimen_group(word) is None and word not in FORM_WORDS]
    if len(analyte) != 1:
        return None
    spelt = LAB_MNEMONICS.get(analyte[0])
    return " ".join(spelt if word == analyte[0] else word for word in words) if spelt else None


# A dictionary asks at order entry where the specimen came from under the test's name ("EBV Source",
# "Legionella Specimen Source", "B burgdorferi Src"; 20 lab train names, every one LOINC's specimen
# source): the answer is the source, whichever the test, and the test's name only pulls its codes ahead.
_SOURCE_QUESTION = re.compile(r"\b(source|src)\W*$", re.IGNORECASE)


def _source_question(text: str) -> str | None:
    """A lab name that asks for the specimen's source, as LOINC words it (its specimen words kept); else None."""
    if not _SOURCE_QUESTION.search(text):
        return None
    return " ".join(["specimen source", *(word for word in fold_words(text) if specimen_group(word))])


AXIS_FORMATS = frozenset({"loinc"})  # terminologies whose concepts have LOINC's axes
# Words that name an order of several results: a source that says one may mean a LOINC panel. Besides
# "panel" itself, the names local systems give panels (lab train split: "CBC2", "MANUAL DIFFERENTIAL",
# "ABG (POC)", "UA-DIPSTICK", "ELECTROLYTE PRFL" all map to panels).
_PANEL_WORDS = frozenset("panel pnl profile prfl cbc hemogram diff differential abg vbg gas gases dipstick".split())
POOL_DEPTH = 100  # candidates each matcher contributes per query before fusion
ANN_ROWS = 200  # nearest rows asked of the index: ~1.1 rows per concept, some filtered out
CHUNK = 64  # queries scored together: (queries x rows) score arrays of ~30 MB stay nearer the CPU caches than 128 (201-218 vs 196-202 terms/s)


@dataclass
class _Chunk:
    """Both matchers' evidence for a chunk of queries."""

    lexical_rows: np.ndarray  # (queries x rows): sparse TF-IDF makes every row cheap
    lexical: np.ndarray  # (queries x concepts)
    vectors: np.ndarray  # (queries x dim) query embeddings
    nearest_rows: np.ndarray  # (queries x ANN_ROWS) from the HNSW index, best first
    query_words: list[frozenset[str]]
    axes: list[Axes]  # what each source states about LOINC axes (name words, specimen, unit)
    history: tuple[np.ndarray, np.ndarray] | None = None  # nearest approved sources, their cosines


@dataclass
class _Semantic:
    """One query's exact cosines, for the concepts (and rows) fusion looks at; 0 elsewhere."""

    concepts: np.ndarray
    rows: np.ndarray


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
        fusion: Fusion | None = None,
        lexical: LexicalMatcher | None = None,
        progress: bool = False,
        history: ApprovedHistory | None = None,
        history_vectors: np.ndarray | None = None,
    ):
        self.terminology = terminology
        self.rows = ConceptRows.of(terminology)
        self.fusion = fusion or default_fusion(terminology.format)
        self.lexical = lexical or LexicalMatcher().fit_cached(self.rows.texts, cache_dir)
        self.dense = DenseMatcher(encoder, cache_dir).fit(self.rows.texts, progress=progress)
        self.model_version = f"{encoder.model_id}+tfidf-char3-5-df{self.lexical.max_df}+{self.fusion.version}"
        self._parent = _parent_positions(terminology)
        self._ancestors = _ancestor_positions(self._parent)
        self._depth = (self._ancestors >= 0).sum(axis=1)
        self._children = np.bincount(self._parent[self._parent >= 0], minlength=len(terminology))
        self._display_words: list[frozenset[str] | None] = [None] * len(terminology)  # by position
        self._concept_axes: dict[int, Axes] = {}
        self._has_axes = terminology.format in AXIS_FORMATS
        self._panels: np.ndarray | None = None
        self._panel_words = _PANEL_WORDS  # and, once the table is read, the words only its panels use
        self._known_words: frozenset[str] | None = None  # abbreviations the target table writes itself
        self._acids: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())  # its anions, its acids
        self._word_weights: dict[str, float] | None = None  # its words by rarity, where the fusion reads them
        self._masks: dict[tuple, np.ndarray] = {}
        self.history = history
        self._history = self._index_history(history, history_vectors) if history else None

    # -- public -------------------------------------------------------------------------------
    def allowed(self, where: dict[str, Any] | None = None, active_only: bool = True) -> np.ndarray:
        """Boolean mask of concepts a search may return: active, the terminology's default targets
        (ICD-10-CM billable codes, OMOP standard concepts, LOINC results rather than panels) narrowed
        or widened by `where` (`{"billable": "any"}` lifts that default)."""
        defaults, wanted = target_filters(self.terminology.format, where)
        return np.fromiter(
            (
                (c.active or not active_only) and attributes_match(c, wanted) and attributes_match(c, defaults, True)
                for c in self.terminology
            ),
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
        results: list[list[Suggestion]] = []
        for chunk, scores in self._scored_chunks(list(items)):
            pools = [self._candidates(scores, query, self._query_mask(where, item)) for query, item in enumerate(chunk)]
            fused = self.fusion.score_pools([candidates.features for candidates, _ in pools])
            for query, ((candidates, semantic), query_fused) in enumerate(zip(pools, fused)):
                results.append(self._rank(candidates, query_fused, semantic, scores, query, top_k))
            if on_chunk:
                on_chunk(len(chunk))
        return results

    def search(self, text: str, top_k: int = 10, where: dict[str, Any] | None = None) -> list[Suggestion]:
        """A reviewer's concept search: the same ranking for one free-text query."""
        return self.suggest([SourceItem(code="", text=text)], top_k, where)[0]

    def history_vectors(self) -> np.ndarray | None:
        """The approved history's source vectors under this suggester's encoder (saved with a model)."""
        return self._history.vectors if self._history else None

    def candidates(self, items: Sequence[SourceItem | str], where: dict[str, Any] | None = None) -> list[Candidates]:
        """Candidate pools with fusion features, for fitting a fusion on labelled mappings."""
        sources = [SourceItem("", i) if isinstance(i, str) else i for i in items]
        out: list[Candidates] = []
        for chunk, scores in self._scored_chunks(sources):
            out.extend(self._candidates(scores, q, self._query_mask(where, item))[0] for q, item in enumerate(chunk))
        return out

    # -- internals ----------------------------------------------------------------------------
    def _index_history(self, history: ApprovedHistory, vectors: np.ndarray | None) -> HistoryIndex | None:
        if not len(history):
            return None
        if vectors is None or len(vectors) != len(history):
            vectors = self.dense.encode_queries(self._spelt_out(list(history.texts)))  # as queries are read
        position = {c.code: i for i, c in enumerate(self.terminology)}
        return HistoryIndex(history, vectors, position, self._parent, _text_words, self._words)

    def _mask(self, where: dict[str, Any] | None) -> np.ndarray:
        # Walking 98k concepts in Python costs ~50 ms: once per filter, not once per query.
        key = tuple(sorted((where or {}).items(), key=lambda kv: kv[0]))
        if key not in self._masks:
            mask = self.allowed(where)
            if not mask.any():
                raise ValueError(f"no concept of {self.terminology.name} matches the filter {where}")
            self._masks[key] = mask
        return self._masks[key]

    def _query_mask(self, where: dict[str, Any] | None, item: SourceItem) -> np.ndarray:
        """The filter's mask; a LOINC source that names a panel may also get panels (unless `where` decides)."""
        mask = self._mask(where)
        if not self._has_axes or "panel" in (where or {}):
            return mask
        self._read_table_words()
        if not self._panels.any() or not _names_panel(item.text, self._panel_words):
            return mask
        try:
            return mask | self._mask({**(where or {}), "panel": True})
        except ValueError:  # no active panel passes the rest of the filter
            return mask

    def _scored_chunks(self, items: list[SourceItem]) -> Iterator[tuple[list[SourceItem], _Chunk]]:
        """Chunks with both matchers' scores; the next chunk is scored while this one is ranked.

        Encoding (onnxruntime) and the index search run outside the GIL, so they overlap the
        Python-heavy ranking of the previous chunk.
        """
        chunks = list(_chunks(items, CHUNK))
        if len(chunks) < 2:
            yield from ((chunk, self._score(chunk)) for chunk in chunks)
            return
        with ThreadPoolExecutor(max_workers=1) as worker:
            pending = worker.submit(self._score, chunks[0])
            for index, chunk in enumerate(chunks):
                scores = pending.result()
                if index + 1 < len(chunks):
                    pending = worker.submit(self._score, chunks[index + 1])
                yield chunk, scores

    def _query_texts(self, items: list[SourceItem]) -> list[str]:
        """The names the matchers compare (see `_spelt_out`)."""
        return self._spelt_out([item.query_text() for item in items])

    def _spelt_out(self, texts: list[str]) -> list[str]:
        """Source texts with the abbreviations the target table never uses spelt out (lab words for a
        LOINC-like table, clipped clinical words for any other): queries and approved history alike.
        A lab name also loses its reflex clause, one that is a bare mnemonic ("K") reads as its analyte,
        and one that asks for the specimen's source ("EBV Source") reads as that question."""
        self._read_table_words()
        if not self._has_axes:
            return [expand_unknown(text, self._known_words, self._abbreviations()) for text in texts]
        texts = [without_reflex(text) for text in texts]
        spelt = [
            _source_question(text) or _bare_mnemonic(text) or expand_unknown(text, self._known_words, LAB_ABBREVIATIONS)
            for text in texts
        ]
        return [acids_as_anions(text, *self._acids) for text in spelt]

    def _abbreviations(self) -> dict[str, str]:
        return LAB_ABBREVIATIONS if self._has_axes else clinical_abbreviations()

    def _read_table_words(self) -> None:
        """Once, in one pass over the table's names: the abbreviations it writes itself, how rare each of
        its words is (where the fusion reads that) and, for a LOINC-like table, the words only its panels
        use ("comprehensive", "electrolytes", "urinalysis": a source that says one asks for a panel,
        whatever the table)."""
        if self._known_words is not None:
            return
        table = self._abbreviations()
        weigh = any(self.fusion.reads(name) for name in WEIGHTED_COVERAGE)
        if not self._has_axes:  # no panels: the abbreviations alone (and the words' rarity, where read)
            self._panels = np.zeros(len(self.terminology), bool)
            # a generator unless the rarity is read: holding ICD-10-CM's 120k word lists cost a warm start 1 s
            names: Iterable[list[str]] = (fold_words(text) for text in self.rows.texts)
            if weigh:
                names = list(names)
                self._word_weights = word_weights(names)
            self._known_words = frozenset(w for words in names for w in words if w in table)
            return
        names = [fold_words(text) for text in self.rows.texts]
        if weigh:
            self._word_weights = word_weights(names)
        self._panels = np.fromiter((c.attributes.get("panel") is True for c in self.terminology), bool)
        words_of: tuple[set[str], set[str]] = (set(), set())  # words of results, words of panels
        for words, is_panel in zip(names, self._panels[self.rows.row_concept].tolist()):
            words_of[is_panel].update(words)
        folded = [" ".join(words) for words in names]
        table_words = words_of[0] | words_of[1]
        self._known_words = frozenset(w for w in table_words if w in table) | known_phrases(folded, table)
        self._acids = table_acids(table_words, folded)
        panel_only = words_of[1] - words_of[0]
        self._panel_words = _PANEL_WORDS | {w for w in panel_only if len(w) > 3 and not w.isdigit()}

    def _score(self, items: list[SourceItem]) -> _Chunk:
        texts = self._query_texts(items)
        lexical_rows = self.lexical.row_scores(texts)
        vectors = self.dense.encode_queries(texts)
        nearest, _ = self.dense.nearest_rows(vectors, ANN_ROWS)  # re-scored exactly later
        return _Chunk(
            lexical_rows,
            self.rows.concept_max(lexical_rows),
            vectors,
            nearest,
            [_text_words(t) for t in texts],
            [source_axes(item.text, item.context) if self._has_axes else NO_AXES for item in items],
            self._history.neighbours(vectors) if self._history else None,
        )

    def _candidates(self, chunk: _Chunk, query: int, mask: np.ndarray) -> tuple[Candidates, _Semantic]:
        lexical = chunk.lexical[query]
        semantic: _Semantic | None = None
        semantic_top = self._semantic_top(chunk, query, mask)
        if semantic_top is None:  # the filter hid the index's nearest rows: score every row
            semantic = self._semantic_everywhere(chunk.vectors[query])
            semantic_top = _top(np.where(mask, semantic.concepts, -2.0), POOL_DEPTH)
        lexical_top = _top_allowed(lexical, mask, POOL_DEPTH)
        pool = np.union1d(lexical_top, semantic_top)
        if chunk.history is not None:  # the nearest approved sources' targets are candidates too
            pool = np.union1d(pool, self._history.targets_of(chunk.history[0][query]))
        pool = pool[mask[pool]]
        ancestors = self._ancestors[pool]  # (pool x depth), -1 padded; column 0 is the parent
        if semantic is None:
            semantic = self._semantic_of(chunk.vectors[query], np.union1d(pool, ancestors[ancestors >= 0]))
        concept_words = self._words_of(pool)
        evidence = CandidateEvidence(
            lexical=lexical[pool],
            semantic=semantic.concepts[pool],
            parent_lexical=_at(lexical, ancestors[:, 0]),
            parent_semantic=_at(semantic.concepts, ancestors[:, 0]),
            ancestor_lexical=_at(lexical, ancestors).max(axis=1, initial=0.0),
            ancestor_semantic=_at(semantic.concepts, ancestors).max(axis=1, initial=0.0),
            query_words=chunk.query_words[query],
            concept_words=concept_words,
            depth=self._depth[pool],
            siblings=self._children[np.maximum(ancestors[:, 0], 0)] * (ancestors[:, 0] >= 0),
            history=self._history.features(
                pool, chunk.history[0][query], chunk.history[1][query], chunk.query_words[query], concept_words
            )
            if chunk.history is not None
            else None,
            axes=axis_features(chunk.axes[query], [self._axes(i) for i in pool]) if self._has_axes else None,
            word_weights=self._word_weights,
        )
        return Candidates(pool, candidate_features(evidence)), semantic

    def _semantic_top(self, chunk: _Chunk, query: int, mask: np.ndarray) -> np.ndarray | None:
        """The allowed concepts owning the index's nearest rows, or None if too few survive."""
        concepts = self.rows.row_concept[chunk.nearest_rows[query]]
        allowed = concepts[mask[concepts]]
        _, first = np.unique(allowed, return_index=True)  # rows come best first
        if len(first) < min(POOL_DEPTH // 2, int(mask.sum())):
            return None
        return allowed[np.sort(first)][:POOL_DEPTH]

    def _semantic_of(self, vector: np.ndarray, concepts: np.ndarray) -> _Semantic:
        rows, starts = self.rows.rows_of(concepts)
        row_scores = self.dense.score_rows(vector, rows)
        semantic = _Semantic(np.zeros(len(self.terminology), np.float32), np.zeros(len(self.rows.texts), np.float32))
        semantic.rows[rows] = row_scores
        semantic.concepts[concepts] = np.maximum.reduceat(row_scores, starts)
        return semantic

    def _semantic_everywhere(self, vector: np.ndarray) -> _Semantic:
        rows = np.asarray(self.dense.all_row_scores(vector), dtype=np.float32)
        return _Semantic(self.rows.concept_max(rows[None, :])[0], rows)

    def _words_of(self, pool: np.ndarray) -> list[frozenset[str]]:
        """The pool's display words: a list lookup per candidate, a call only for unseen ones (a call
        per candidate, keyed by numpy integers, was a tenth of a GEM query's ranking time)."""
        words = [self._display_words[i] for i in pool.tolist()]
        return [self._words(i) for i in pool.tolist()] if None in words else words

    def _words(self, position: int) -> frozenset[str]:
        words = self._display_words[position]
        if words is None:  # normalised on first use: a warm start must not walk 98k displays
            display = self.terminology.concepts[position].display
            words = self._display_words[position] = _text_words(display)
        return words

    def _axes(self, position: int) -> Axes:
        axes = self._concept_axes.get(position)
        if axes is None:  # read on first use, like the display words
            concept = self.terminology.concepts[position]
            axes = self._concept_axes[position] = concept_axes(concept.display, concept.synonyms, concept.attributes)
        return axes

    def _rank(
        self, candidates: Candidates, fused: np.ndarray, semantic: _Semantic, chunk: _Chunk, query: int, top_k: int
    ) -> list[Suggestion]:
        if self._has_axes:
            fused = contradictions_fall(fused, candidates.features)
        best = np.argsort(-fused, kind="stable")[:top_k]
        return [
            self._suggestion(int(candidates.pool[j]), float(fused[j]), rank, semantic, chunk, query)
            for rank, j in enumerate(best, start=1)
        ]

    def _suggestion(
        self, position: int, fused: float, rank: int, semantic: _Semantic, chunk: _Chunk, query: int
    ) -> Suggestion:
        concept: Concept = self.terminology.concepts[position]
        row = self.rows.best_row(chunk.lexical_rows[query], semantic.rows, position)
        matched = self.rows.texts[row]
        return Suggestion(
            code=concept.code,
            display=concept.display,
            score=round(fused, 4),
            rank=rank,
            evidence={
                "lexical": round(float(chunk.lexical[query, position]), 4),
                "semantic": round(float(semantic.concepts[position]), 4),
                "matched_text": matched,
                "matched_synonym": matched != concept.display,
                "fusion": self.fusion.version,
            },
        )


# A candidate whose specimen or property contradicts what the source states (Blood for a serum test, a
# mass concentration for mmol/L) keeps this share of its fused probability: the fusion learns the
# conflict features, but one loud name match must never carry a contradicted candidate above the rest.
CONTRADICTED = 0.4
_CONFLICTS = [FEATURES.index("system_conflict"), FEATURES.index("property_conflict")]


def contradictions_fall(fused: np.ndarray, features: np.ndarray) -> np.ndarray:
    contradicted = features[:, _CONFLICTS].max(axis=1) > 0
    return np.where(contradicted, fused * CONTRADICTED, fused)


def _names_panel(text: str, panel_words: frozenset[str] = _PANEL_WORDS) -> bool:
    return any(word.rstrip("0123456789") in panel_words for word in normalize(text).split())  # "CBC2" too


def _text_words(text: str) -> frozenset[str]:
    """The words fusion compares: normalised, stopwords dropped (queries, displays, history sources)."""
    return content_words(normalize(text))


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """The positions of the `depth` best scores. Of equal scores at the boundary (a fifth of GEM
    queries have some), the first positions: a pool must not depend on how a partition orders ties."""
    depth = min(depth, len(scores))
    kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]
    above = np.flatnonzero(scores > kth)
    return np.concatenate([above, np.flatnonzero(scores == kth)[: depth - len(above)]])


def _top_allowed(scores: np.ndarray, mask: np.ndarray, depth: int) -> np.ndarray:
    """The top `depth` allowed positions. Most character n-gram scores are 0: partitioning only the
    positive ones (~40% of ICD-10-CM for a GEM title) is faster than partitioning all 98k concepts."""
    positive = np.flatnonzero(mask & (scores > 0))
    if len(positive) < depth:
        return _top(np.where(mask, scores, -2.0), depth)
    return positive[_top(scores[positive], depth)]


def _at(scores: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """scores[positions] with 0 where a position is -1 (no parent / padding)."""
    return np.where(positions >= 0, scores[np.maximum(positions, 0)], 0.0).astype(np.float32)


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
