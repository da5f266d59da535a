"""Rank target fields for source columns: names, descriptions, types, values and table context.

Each (source column, target field) pair gets evidence in [0, 1]:

- `name`: IDF-weighted overlap of the words of the column and table names, after splitting
  snake/camel case and run-together words and expanding abbreviations (models/fields/names.py);
- `semantic`: MiniLM cosine of the column's text (names + description + what its values look
  like) to the field's (names + definition);
- `lexical`: TF-IDF character n-gram cosine of the same texts (models/lexical.py);
- `type`: compatibility of declared or profiled type (a date column -> a date field);
- `values`: what the value profile implies (units -> a unit field, ICD-shaped codes -> conditions);
- `table`: how well the source table as a whole fits the target table: its name and description,
  and how well its other columns match that table's fields. This is what sends `labevents.valueuom`
  to `measurement.unit_source_value` rather than `observation.unit_source_value`.

The weighted sum ranks; a logistic calibration of (sum, gap to the column's best) gives the score,
so a column whose best candidate is weak gets a low score rather than a confident wrong answer.
A team's retrained field model (`FieldRanker`, models/fields/learned.py) adds evidence from its
approved columns and replaces the weights and the calibration with ones fitted on its approvals.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from ingest.schema import SourceColumn
from models.dense import TextEncoder, cached_embeddings
from models.fields.learned import HISTORY_EVIDENCE, FieldHistory, FieldRanker
from models.fields.names import NameReader, stem
from models.fields.targets import TargetModel
from models.lexical import LexicalMatcher
from models.text import normalize

# Weights of the evidence in the ranking sum. Set on the development sets of benchmarks/fields.py
# (HL7 v2 -> FHIR R4, a hand-written clinic extract and abbreviated OMOP names -> OMOP CDM): the
# best of a 72-setting grid, whose top eight differ by at most 0.03 acc@5 on any set (a flat optimum).
WEIGHTS = {
    "name": 0.30,
    "semantic": 0.40,
    "lexical": 0.10,
    "type": 0.10,
    "values": 0.10,
    "table": 0.50,
}
# P(correct) = sigmoid(a * sum + b * (sum - best sum of the column) + c): a logistic fit on the top-5
# candidates of the development sets (1,272 columns x 5; expected calibration error 0.032 there).
CALIBRATION = (5.79, 16.37, -6.09)
OWN_TABLE = 0.9  # a column naming a target table: nearly as good a table fit as its source table's best
DESCRIPTION_CHARS = 400  # a target's definition beyond this is ETL detail that blurs its embedding
EVIDENCE = tuple(WEIGHTS)


@dataclass
class FieldCandidate:
    table: str
    column: str
    score: float  # calibrated P(this is the right target)
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class FieldSuggestion:
    source: SourceColumn
    candidates: list[FieldCandidate]


# --- types and value profiles -------------------------------------------------------------------

_TYPE_CLASSES = (
    ("datetime", r"datetime|timestamp|instant|^dtm$|^ts$|time"),
    ("date", r"date|^dt$"),
    ("boolean", r"bool|^bit$"),
    ("number", r"float|double|decimal|numeric|real|^nm$|number|quantity|money"),
    ("integer", r"int|serial|^si$|long|short|^positiveint$|^unsignedint$"),
    ("identifier", r"identifier|^cx$|^ei$|^id$|reference|uuid"),
    ("code", r"code|^cwe$|^cne$|^ce$|^is$|coding|^cf$"),
    ("text", r"char|text|string|^st$|^tx$|^ft$|clob|object|markdown|name|address|^x"),
)
_COMPATIBLE = {
    frozenset({"date", "datetime"}): 0.8,
    frozenset({"integer", "number"}): 0.7,
    frozenset({"code", "text"}): 0.7,
    frozenset({"identifier", "integer"}): 0.8,
    frozenset({"identifier", "text"}): 0.6,
    frozenset({"code", "integer"}): 0.5,
    frozenset({"code", "identifier"}): 0.5,
    frozenset({"boolean", "code"}): 0.5,
    frozenset({"boolean", "integer"}): 0.4,
    frozenset({"boolean", "text"}): 0.4,
}
# What a profiled pattern says about the target, in the target models' own words.
_PROFILE_WORDS = {
    "unit": "unit",
    "icd10": "condition diagnosis source",
    "icd9": "condition diagnosis source",
    "loinc": "measurement observation source",
    "snomed": "concept",
    "ndc": "drug medication source",
    "date": "date",
}
_KIND_WORDS = {"datetime": "datetime date time", "date": "date", "number": "value number", "boolean": "flag"}


def type_class(declared: str) -> str:
    text = (declared or "").lower().split("(")[0].strip()
    if not text:
        return ""
    for name, pattern in _TYPE_CLASSES:
        if re.search(pattern, text):
            return name
    return "text"


def type_compatibility(source: str, target: str) -> float:
    if not source or not target:
        return 0.5
    if source == target:
        return 1.0
    return _COMPATIBLE.get(frozenset({source, target}), 0.15)


def _source_type(column: SourceColumn) -> str:
    profile = column.profile
    if profile is not None and profile.kind not in ("empty", "text"):
        return {"code": "code"}.get(profile.kind, profile.kind)
    declared = type_class(column.type)
    return "" if declared == "text" and column.type.lower() in ("object", "str", "string") else declared


def _profile_words(column: SourceColumn) -> str:
    profile = column.profile
    if profile is None:
        return ""
    words = [_PROFILE_WORDS.get(p, "") for p in profile.patterns] + [_KIND_WORDS.get(profile.kind, "")]
    return " ".join(w for w in words if w)


# --- the suggester -------------------------------------------------------------------------------


class FieldSuggester:
    """Configure, `fit` on a target model, then `suggest` for source columns (pure given the fit)."""

    def __init__(
        self,
        encoder: TextEncoder | None,
        cache_dir: Path | None = None,
        weights: dict[str, float] | None = None,
        use_descriptions: bool = True,
        ranker: FieldRanker | None = None,
    ):
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.weights = dict(WEIGHTS if weights is None else weights)
        self.use_descriptions = use_descriptions
        self.ranker = ranker

    def with_ranker(self, ranker: FieldRanker | None) -> FieldSuggester:
        """This fitted suggester ranking with a team's field model (the fitted target state is shared)."""
        out = copy.copy(self)
        out.ranker = ranker
        return out

    def fit(self, target: TargetModel) -> FieldSuggester:
        self.target_ = target
        fields = target.fields
        vocabulary = set()
        for f in fields:
            vocabulary.update(w for w in re.findall(r"[a-z]+", f"{f.table} {f.column} {f.description}".lower()))
        self.reader_ = NameReader(vocabulary)
        read = self.reader_.words
        self.field_words_ = [read(f.column, False) for f in fields]
        self.tables_ = target.tables
        self.table_index_ = np.array([self.tables_.index(f.table) for f in fields])
        self.table_words_ = [read(t, False) for t in self.tables_]
        self._table_stems = [_stems(w) for w in self.table_words_]
        self.field_types_ = [type_class(f.type) for f in fields]
        # IDF over target fields: "concept", "id" and "source" name half of OMOP; they decide little.
        self.vocab_ = {}
        rows, cols = [], []
        for i, words in enumerate(self.field_words_):
            for w in {stem(w) for w in words}:
                rows.append(i)
                cols.append(self.vocab_.setdefault(w, len(self.vocab_)))
        presence = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(fields), len(self.vocab_)))
        df = np.asarray(presence.sum(0)).ravel()
        self.idf_ = np.log((1 + len(fields)) / (1 + df)) + 1.0
        weighted = presence.multiply(self.idf_).tocsr()
        self.field_word_matrix_ = weighted
        self.field_word_mass_ = np.asarray(weighted.sum(1)).ravel()
        names = [self._target_name_text(f.table, words) for f, words in zip(fields, self.field_words_)]
        full = [self._target_text(name, f.description) for name, f in zip(names, fields)]
        self.lexical_ = LexicalMatcher(analyzer="char_wb", ngram_range=(3, 5)).fit(full)
        if self.encoder is not None:
            self.full_vectors_, _ = cached_embeddings(self.encoder, full, self.cache_dir)
            table_texts = [
                f"{' '.join(w)}. {target.table_descriptions.get(t, '')[:DESCRIPTION_CHARS]}"
                for t, w in zip(self.tables_, self.table_words_)
            ]
            self.table_vectors_, _ = cached_embeddings(self.encoder, table_texts, self.cache_dir)
        return self

    def _target_name_text(self, table: str, column_words: Sequence[str]) -> str:
        return f"{' '.join(self.reader_.words(table, False))} {' '.join(column_words)}"

    def _target_text(self, name: str, description: str) -> str:
        return f"{name}. {description[:DESCRIPTION_CHARS]}" if description else name

    # --- scoring ---

    def evidence(self, columns: list[SourceColumn]) -> dict[str, np.ndarray]:
        """(columns x fields) evidence matrices, each in [0, 1]."""
        column_words = [self._name_words(c) for c in columns]
        table_names = [c.table for c in columns]
        full_texts = self._source_texts(columns, column_words)
        out = {"name": self._word_overlap(column_words)}
        out["lexical"] = np.clip(self.lexical_.row_scores(full_texts), 0, 1)
        vectors = None
        if self.encoder is not None:
            # Names alone as a second embedding measured no better on the development sets and
            # doubled the encoding time (the bulk of a warm run).
            vectors = self._encode(full_texts)
            out["semantic"] = np.clip(vectors @ self.full_vectors_.T, 0, 1)
        else:
            out["semantic"] = np.zeros_like(out["name"])
        out["type"] = self._types(columns)
        out["values"] = self._word_overlap([tuple(_profile_words(c).split()) for c in columns], coverage_of="source")
        out["table"] = self._table_context(columns, table_names, out, column_words)
        if self.ranker is not None and len(self.ranker.history):
            out.update(self.history_evidence(columns, self.ranker.history, column_words=column_words, vectors=vectors))
        return out

    def _source_texts(self, columns: list[SourceColumn], column_words: list[tuple[str, ...]]) -> list[str]:
        read = self.reader_.words
        return [self._source_text(c, f"{' '.join(read(c.table))} {' '.join(w)}") for c, w in zip(columns, column_words)]

    def history_evidence(
        self,
        columns: list[SourceColumn],
        history: FieldHistory,
        leave_out: Sequence[int | None] | None = None,
        column_words: list[tuple[str, ...]] | None = None,
        vectors: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """(columns x fields) evidence from a team's approved columns (see models/fields/learned.py).

        A column's similarity to an approved one: the overlap of their name words, averaged with the
        cosine of their texts when there is an encoder (`vectors`: the columns' own, if encoded already).
        """
        if column_words is None:
            column_words = [self._name_words(c) for c in columns]
        approved_stems, approved_vectors = self._history_index(history)
        similarity = _jaccard([_stems(w) for w in column_words], approved_stems)
        if approved_vectors is not None:
            if vectors is None:
                vectors = self._encode(self._source_texts(columns, column_words))
            similarity = 0.5 * similarity + 0.5 * np.clip(vectors @ approved_vectors.T, 0, 1)
        fields = self.target_.fields
        return history.evidence(
            similarity,
            [c.table for c in columns],
            [f.key for f in fields],
            self.table_index_,
            self.tables_,
            leave_out,
        )

    def _history_index(self, history: FieldHistory) -> tuple[list[set[str]], np.ndarray | None]:
        """The approved columns' name stems and vectors, computed once per history (not per request)."""
        cached = getattr(self, "_history_cache", None)
        if cached is None or cached[0] is not history:
            sources = [a.source for a in history.approved]
            words = [self._name_words(c) for c in sources]
            vectors = self._encode(self._source_texts(sources, words)) if self.encoder is not None else None
            cached = self._history_cache = (history, [_stems(w) for w in words], vectors)
        return cached[1], cached[2]

    def _name_words(self, column: SourceColumn) -> tuple[str, ...]:
        """The column name's words; the description's when the name is an opaque code (`PID-7`, `F23`, `col7`)."""
        words = self.reader_.words(column.column)
        # Without contractions: a segment code like `SCH` would otherwise read as "schedule" and hide its description.
        meaningful = [w for w in self.reader_.words(column.column, False) if not w.isdigit()]
        known = sum(w in self.reader_.vocabulary for w in meaningful)
        if column.description and self.use_descriptions and known < max(len(meaningful), 1) / 2:
            return self.reader_.words(column.description, contractions=False)  # prose, not a column name
        return words

    def _source_text(self, column: SourceColumn, name: str) -> str:
        parts = [name]
        if self.use_descriptions and column.description:
            parts.append(column.description)
        if self.use_descriptions and column.table_description:
            parts.append(column.table_description[:200])
        hints = _profile_words(column)
        if hints:
            parts.append(hints)
        return ". ".join(parts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        unique = list(dict.fromkeys(normalize(t) for t in texts))  # as cached_embeddings does for targets
        vectors = self.encoder.encode(unique)
        position = {t: i for i, t in enumerate(unique)}
        return vectors[[position[normalize(t)] for t in texts]]

    def _word_matrix(self, word_lists: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        rows, cols = [], []
        for i, words in enumerate(word_lists):
            for w in {stem(w) for w in words}:
                if w in self.vocab_:
                    rows.append(i)
                    cols.append(self.vocab_[w])
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(word_lists), len(self.vocab_)))

    def _word_overlap(self, word_lists: Sequence[Sequence[str]], coverage_of: str = "both") -> np.ndarray:
        """IDF-weighted share of the target field's words the source names (and of the source's it explains)."""
        query = self._word_matrix(word_lists)
        shared = (query @ self.field_word_matrix_.T).toarray()
        target_share = shared / np.maximum(self.field_word_mass_, 1e-9)
        query_mass = np.asarray(query.multiply(self.idf_).sum(1)).ravel()
        source_share = shared / np.maximum(query_mass, 1e-9)[:, None]
        if coverage_of == "source":
            return np.clip(source_share, 0, 1)
        return np.clip(0.5 * target_share + 0.5 * source_share, 0, 1)

    def _types(self, columns: list[SourceColumn]) -> np.ndarray:
        kinds = [_source_type(c) for c in columns]
        classes = sorted(set(self.field_types_))
        table = {(k, t): type_compatibility(k, t) for k in set(kinds) for t in classes}
        column_of = np.array([classes.index(t) for t in self.field_types_])
        per_kind = {k: np.array([table[(k, t)] for t in classes])[column_of] for k in set(kinds)}
        return np.stack([per_kind[k] for k in kinds]) if kinds else np.zeros((0, len(self.field_types_)))

    def _table_context(self, columns, table_names, evidence, column_words) -> np.ndarray:
        """(columns x fields): how well the column's source table fits each field's target table.

        A column that names a target table itself (`patients.dod`, "date of death" -> `death`) is
        not held to its own table's fit: ETL often splits one source table over several targets.
        """
        base = self._combine(evidence, exclude=("table",))
        source_tables = list(dict.fromkeys(table_names))
        table_of = np.array([source_tables.index(t) for t in table_names])
        n_targets = len(self.tables_)
        # Best field per (column, target table), then averaged over the source table's columns.
        best = np.full((len(columns), n_targets), 0.0)
        np.maximum.at(best.T, self.table_index_, base.T)
        collective = np.zeros((len(source_tables), n_targets))
        np.add.at(collective, table_of, best)
        collective /= np.bincount(table_of, minlength=len(source_tables))[:, None]
        names = self._table_name_similarity(columns, source_tables, table_of)
        fit = (0.5 * _scaled(collective) + 0.5 * names)[table_of]
        named = np.array([[len(w & t) / max(len(t), 1) for t in self._table_stems] for w in map(_stems, column_words)])
        return np.maximum(fit, OWN_TABLE * named)[:, self.table_index_]

    def _table_name_similarity(self, columns, source_tables, table_of) -> np.ndarray:
        read = self.reader_.words
        descriptions = {}
        for column, index in zip(columns, table_of):
            descriptions.setdefault(index, column.table_description if self.use_descriptions else "")
        words = [set(map(stem, read(t))) for t in source_tables]
        target_words = [set(map(stem, w)) for w in self.table_words_]
        overlap = np.array([[len(s & t) / max(len(t), 1) for t in target_words] for s in words])
        if self.encoder is None:
            return overlap
        texts = [f"{' '.join(read(t))}. {descriptions.get(i, '')[:200]}" for i, t in enumerate(source_tables)]
        dense = np.clip(self._encode(texts) @ self.table_vectors_.T, 0, 1)
        return 0.5 * overlap + 0.5 * _scaled(dense)

    def _combine(self, evidence: dict[str, np.ndarray], exclude: Sequence[str] = ()) -> np.ndarray:
        parts = [self.weights[k] * evidence[k] for k in self.weights if k not in exclude and self.weights[k]]
        return np.sum(parts, axis=0)

    # --- ranking ---

    def rank(self, columns: list[SourceColumn]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(columns x fields) ranking sums and the evidence behind them."""
        evidence = self.evidence(columns)
        return self.total(evidence), evidence

    def total(self, evidence: dict[str, np.ndarray]) -> np.ndarray:
        """The ranking sum: the team's field model's weights when it has one, else the bundled ones."""
        bundled = self._combine(evidence)
        if self.ranker is None:
            return bundled
        # "bundled" is the bundled sum itself: one weight that keeps the shipped balance when it holds
        zero = np.zeros_like(bundled)
        terms = {**evidence, "bundled": bundled}
        return np.sum([w * terms.get(k, zero) for k, w in self.ranker.weights.items() if w], axis=0)

    def suggest(self, columns: list[SourceColumn], top_k: int = 5) -> list[FieldSuggestion]:
        if not columns:
            return []
        totals, evidence = self.rank(columns)
        scores = calibrated(totals, self.ranker.calibration if self.ranker else CALIBRATION)
        top = min(top_k, totals.shape[1])
        order = np.argsort(-totals, axis=1, kind="stable")[:, :top]
        fields = self.target_.fields
        out = []
        for i, column in enumerate(columns):
            candidates = [
                FieldCandidate(
                    fields[j].table,
                    fields[j].column,
                    round(float(scores[i, j]), 4),
                    {k: round(float(evidence[k][i, j]), 4) for k in (*EVIDENCE, *HISTORY_EVIDENCE) if k in evidence},
                )
                for j in order[i]
            ]
            out.append(FieldSuggestion(column, candidates))
        return out


def _stems(words) -> set[str]:
    return {stem(w) for w in words}


def _jaccard(left: Sequence[set[str]], right: Sequence[set[str]]) -> np.ndarray:
    out = np.zeros((len(left), len(right)))
    for i, a in enumerate(left):
        for j, b in enumerate(right):
            union = len(a | b)
            out[i, j] = len(a & b) / union if union else 0.0
    return out


def _scaled(matrix: np.ndarray) -> np.ndarray:
    """Rows rescaled to [0, 1] by their own maximum: a table's fit relative to the best table."""
    top = matrix.max(axis=1, keepdims=True) if matrix.size else matrix
    return matrix / np.maximum(top, 1e-9)


def calibrated(totals: np.ndarray, calibration: tuple[float, float, float] = CALIBRATION) -> np.ndarray:
    a, b, c = calibration
    gap = totals - totals.max(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-(a * totals + b * gap + c)))
