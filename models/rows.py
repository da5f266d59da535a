"""Concept strings laid out as rows: every matcher scores rows, callers want concepts.

A concept with a display and two synonyms owns three consecutive rows, so a concept's score is the
maximum over its slice, computed for all concepts at once with `np.maximum.reduceat`.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def concept_max(self, row_scores: np.ndarray) -> np.ndarray:
        """(queries x rows) -> (queries x concepts): each concept's best row."""
        return np.maximum.reduceat(row_scores, self.starts, axis=1)

    def rows_of(self, concepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All rows of the given (sorted, distinct) concepts, and where each concept's rows start."""
        ends = np.append(self.starts[1:], len(self.texts))
        lengths = ends[concepts] - self.starts[concepts]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rows = np.repeat(self.starts[concepts] - offsets, lengths) + np.arange(lengths.sum())
        return rows, offsets

    def best_row(self, lexical: np.ndarray, semantic: np.ndarray, concept: int) -> int:
        """The row (display or synonym) that matched a concept best on both scores together."""
        start = self.starts[concept]
        end = self.starts[concept + 1] if concept + 1 < len(self.starts) else len(self.texts)
        return int(start + np.argmax(lexical[start:end] + semantic[start:end]))
