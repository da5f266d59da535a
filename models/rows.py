"""Concept strings laid out as rows: every matcher scores rows, callers want concepts.

A concept with a display and two synonyms owns three consecutive rows, so a concept's score is the
maximum over its slice, computed for all concepts at once with `np.maximum.reduceat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from models.terminology import Terminology


@dataclass(frozen=True)
class ConceptRows:
    texts: list[str]  # one string per row
    row_concept: np.ndarray  # row -> concept position
    starts: np.ndarray  # concept position -> first row

    @classmethod
    def of(cls, terminology: Terminology) -> ConceptRows:
        texts: list[str] = []
        owner: list[int] = []
        starts = np.empty(len(terminology), dtype=np.int64)
        for position, concept in enumerate(terminology):
            starts[position] = len(texts)
            strings = concept.texts()
            texts.extend(strings)
            owner.extend([position] * len(strings))
        return cls(texts, np.asarray(owner, dtype=np.int64), starts)

    @cached_property
    def lengths(self) -> np.ndarray:
        """Rows per concept (computed once: building it per query cost 0.2 ms)."""
        return np.diff(np.append(self.starts, len(self.texts)))

    @cached_property
    def _later_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """For k = 1, 2, ...: the concepts with over k rows, and their k-th row."""
        lengths = self.lengths
        return [
            (concepts, self.starts[concepts] + k)
            for k in range(1, int(lengths.max(initial=1)))
            if len(concepts := np.flatnonzero(lengths > k))
        ]

    def concept_max(self, row_scores: np.ndarray) -> np.ndarray:
        """(queries x rows) -> (queries x concepts): each concept's best row.

        Each concept's first row, then a running max over its later rows: most concepts own one
        row, so this is ~1.5x faster than np.maximum.reduceat over ICD-10-CM's 98k slices. `take`
        keeps each query's scores contiguous (`row_scores[:, starts]` is column-major, and every
        per-query pass over a strided row of 98k concepts cost ~5x more).
        """
        best = np.take(row_scores, self.starts, axis=1)
        for concepts, rows in self._later_rows:
            best[:, concepts] = np.maximum(best[:, concepts], row_scores[:, rows])
        return best

    def rows_of(self, concepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All rows of the given (sorted, distinct) concepts, and where each concept's rows start."""
        lengths = self.lengths[concepts]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rows = np.repeat(self.starts[concepts] - offsets, lengths) + np.arange(lengths.sum())
        return rows, offsets

    def best_row(self, lexical: np.ndarray, semantic: np.ndarray, concept: int) -> int:
        """The row (display or synonym) that matched a concept best on both scores together."""
        start = self.starts[concept]
        end = self.starts[concept + 1] if concept + 1 < len(self.starts) else len(self.texts)
        return int(start + np.argmax(lexical[start:end] + semantic[start:end]))
