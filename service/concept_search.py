"""Text search over a target terminology: the words a reviewer types, found in displays and synonyms.

The model's ranking answers "which concept is this source most likely?"; a reviewer who searches
wants "which concepts contain these words?", so a nonsense query finds nothing rather than the
nearest neighbour. Each query word must be a word, or the start of a word, of the concept's display
or one of its synonyms. The index is a word -> sorted positions table (numpy arrays: LOINC's ~100k
concepts with their related names take a few MB, where Python sets would take ~100 MB), built once per
terminology object on the first search. SQLite FTS or a search server would need the catalog copied
into them; this keeps the catalog files the one source.
"""

from __future__ import annotations

import bisect
import re
import threading
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from models.terminology import Concept, Terminology, attributes_match
from models.text import fold

_WORD = re.compile(r"[a-z0-9]+")
EXACT_WINDOW = 200  # matches checked for an exact name: a word index cannot say "all and only these words"
MIN_PREFIX = 2  # a one-letter query word matches whole words only ("a" would match half of LOINC)
# Concept attributes a search can be filtered by, where the terminology has them (LOINC does).
FACETS = ("class", "system", "scale", "status")
# Statuses that still load (old data uses them) but ask for a second look before being chosen.
DISCOURAGED_STATUSES = frozenset({"DISCOURAGED", "DEPRECATED", "INACTIVE", "RETIRED"})


def words_of(text: str) -> list[str]:
    """Lower-case ASCII words: 'Glucose [Mass/volume]' -> ['glucose', 'mass', 'volume']."""
    return _WORD.findall(fold(text))


def needs_second_look(concept: Concept) -> str | None:
    """Why choosing this concept deserves a warning (deprecated, discouraged, inactive), else None."""
    status = str(concept.attributes.get("status") or "").upper()
    if status in DISCOURAGED_STATUSES:
        return status
    return None if concept.active else "INACTIVE"


@dataclass(frozen=True)
class TextHit:
    position: int
    exact: bool  # the query is the display or a synonym (folded)
    in_display: bool  # every query word is found in the display itself


@dataclass(frozen=True)
class TextMatches:
    hits: list[TextHit]  # best first
    hidden_inactive: int  # matches left out because the concept is inactive or deprecated


class TextIndex:
    """Word -> concept positions, for displays and for every text (display and synonyms)."""

    def __init__(self, terminology: Terminology):
        self.terminology = terminology
        display: dict[str, list[int]] = {}
        every: dict[str, list[int]] = {}
        for position, concept in enumerate(terminology.concepts):
            words = [words_of(text) for text in concept.texts()]
            for word in set(words[0]):
                display.setdefault(word, []).append(position)
            for word in {w for text in words for w in text}:
                every.setdefault(word, []).append(position)
        self._display = {w: np.asarray(p, dtype=np.int32) for w, p in display.items()}
        self._every = {w: np.asarray(p, dtype=np.int32) for w, p in every.items()}
        self._vocabulary = sorted(self._every)
        count = len(terminology)
        self._lengths = np.fromiter((len(c.display) for c in terminology.concepts), dtype=np.int32, count=count)
        self._second_look = np.fromiter(
            (needs_second_look(c) is not None for c in terminology.concepts), dtype=bool, count=count
        )

    @cached_property
    def facets(self) -> dict[str, list[str]]:
        """The values of each filterable attribute the terminology has (none for most terminologies)."""
        values: dict[str, set[str]] = {name: set() for name in FACETS}
        for concept in self.terminology.concepts:
            for name in FACETS:
                value = concept.attributes.get(name)
                if isinstance(value, str) and value:
                    values[name].add(value)
        return {name: sorted(found, key=str.casefold) for name, found in values.items() if found}

    def find(
        self, text: str, where: dict[str, Any] | None = None, include_inactive: bool = False, limit: int = 10
    ) -> TextMatches:
        query = words_of(text)
        if not query:
            return TextMatches([], 0)
        found = self._matching(query, self._every)
        if found is None or not len(found):
            return TextMatches([], 0)
        concepts = self.terminology.concepts
        if where:  # attribute filters walk the matches in Python: only when asked for
            wanted = np.fromiter((attributes_match(concepts[p], where) for p in found), dtype=bool, count=len(found))
            found = found[wanted]
        hidden = 0
        if not include_inactive:
            inactive = self._second_look[found]
            hidden, found = int(inactive.sum()), found[~inactive]
        in_display = self._matching(query, self._display)
        shown_in_display = np.isin(found, in_display) if in_display is not None else np.zeros(len(found), dtype=bool)
        # Best first: all words in the display, then shorter names (then catalog order) ...
        order = np.lexsort((found, self._lengths[found], ~shown_in_display))
        ranked, in_display_ranked = found[order].tolist(), shown_in_display[order].tolist()
        # ... and among the first EXACT_WINDOW, a concept named exactly as the query goes first.
        phrase = " ".join(query)
        exact = [any(" ".join(words_of(t)) == phrase for t in concepts[p].texts()) for p in ranked[:EXACT_WINDOW]]
        best = sorted(range(len(exact)), key=lambda i: not exact[i]) + list(range(len(exact), len(ranked)))
        hits = [TextHit(ranked[i], i < len(exact) and exact[i], in_display_ranked[i]) for i in best[:limit]]
        return TextMatches(hits, hidden)

    def _matching(self, query: list[str], table: dict[str, np.ndarray]) -> np.ndarray | None:
        result: np.ndarray | None = None
        for word in sorted(set(query), key=len, reverse=True):  # longer words are rarer: intersect them first
            positions = self._positions(word, table)
            result = positions if result is None else np.intersect1d(result, positions, assume_unique=True)
            if not len(result):
                break
        return result

    def _positions(self, word: str, table: dict[str, np.ndarray]) -> np.ndarray:
        """Concepts with `word` itself, or (from MIN_PREFIX letters on) a word that starts with it."""
        if len(word) < MIN_PREFIX:
            return table.get(word, np.empty(0, dtype=np.int32))
        start = bisect.bisect_left(self._vocabulary, word)
        end = bisect.bisect_left(self._vocabulary, word + "\uffff")
        parts = [table[w] for w in self._vocabulary[start:end] if w in table]
        if not parts:
            return np.empty(0, dtype=np.int32)
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))


_indexes: dict[int, tuple[weakref.ref, TextIndex]] = {}
_lock = threading.Lock()


def text_index(terminology: Terminology) -> TextIndex:
    """The terminology's index, built on first use and dropped with the terminology (a catalog
    update loads a new terminology object, which gets a new index)."""
    key = id(terminology)
    kept = _indexes.get(key)
    if kept is not None and kept[0]() is terminology:
        return kept[1]
    with _lock:
        kept = _indexes.get(key)
        if kept is None or kept[0]() is not terminology:
            for dead in [k for k, (ref, _) in _indexes.items() if ref() is None]:
                del _indexes[dead]
            kept = _indexes[key] = (weakref.ref(terminology), TextIndex(terminology))
    return kept[1]
