"""Training sets from approved mappings: positives, hard negatives, and a held-out split by source code.

A release's approvals become `ApprovedMapping`s (source text + context -> approved target). Hard
negatives are what a reviewer passed over (a rejected or higher-ranked wrong suggestion) and, mined
here, the candidates the current model ranks highest that are not a gold target.

The split is by source code, never by row, from a hash of the code alone, so a code is in the same
part in every run and every release: `is_test_code` (sha1 % 5 == 0) is held out for evaluation (the
GEM benchmark's test split), and a quarter of the rest (`is_fit_code`) never trains the encoder; the
fusion and the confidence calibration are fitted there, on scores the encoder was not trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.items import SourceItem
from training.datasets import LabelledQuery, is_test_code


@dataclass(frozen=True)
class ApprovedMapping:
    source_code: str
    source_text: str
    targets: tuple[str, ...]  # target concept codes (as the terminology writes them); any is correct
    context: dict[str, str] = field(default_factory=dict)
    negatives: tuple[str, ...] = ()  # codes a reviewer rejected or passed over for this source

    def item(self) -> SourceItem:
        """The source as the suggester sees it at serving time (name and context)."""
        return SourceItem(self.source_code, self.source_text, dict(self.context))

    def query_text(self) -> str:
        """The text the matchers compare with concept names."""
        return self.item().query_text()


@dataclass(frozen=True)
class Split:
    train: list[ApprovedMapping]  # fine-tunes the encoder
    fit: list[ApprovedMapping]  # fits the fusion and the calibration; early stopping watches its loss
    heldout: list[ApprovedMapping]  # evaluates challenger and champion alike; never trained on

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "fit": len(self.fit), "heldout": len(self.heldout)}


def _code_hash(code: str) -> int:
    return int(hashlib.sha1(code.encode()).hexdigest(), 16)


def is_fit_code(code: str) -> bool:
    """A quarter of the non-held-out codes (the hash's next digit in base 5, independent of the test bucket)."""
    return not is_test_code(code) and (_code_hash(code) // 5) % 4 == 0


def split_by_code(mappings: Sequence[ApprovedMapping]) -> Split:
    train, fit, heldout = [], [], []
    for mapping in mappings:
        code = mapping.source_code
        (heldout if is_test_code(code) else fit if is_fit_code(code) else train).append(mapping)
    if not fit:  # a small release: fit on the training codes rather than on nothing
        fit = list(train)
    return Split(train, fit, heldout)


def data_hash(mappings: Sequence[ApprovedMapping]) -> str:
    """sha256 of the training data as canonical JSON: the same approvals always give the same hash."""
    rows = sorted(
        (m.source_code, m.source_text, sorted(m.targets), sorted(m.context.items()), sorted(m.negatives))
        for m in mappings
    )
    return hashlib.sha256(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def gem_mappings(queries: Sequence[LabelledQuery], dotted: dict[str, str]) -> list[ApprovedMapping]:
    """GEM ICD-9-CM codes as approved history: long description -> every GEM target still in ICD-10-CM.

    `dotted` maps an undotted ICD-10-CM code to the terminology's code; unreachable targets are dropped
    (and codes left with none), as benchmarks/mapping.py counts them unreachable.
    """
    out = []
    for query in queries:
        targets = tuple(sorted(dotted[t] for t in query.targets if t in dotted))
        if targets:
            out.append(ApprovedMapping(query.source_code, query.long_text, targets))
    return out


# -- pairs for the encoder --------------------------------------------------------------------------
@dataclass(frozen=True)
class Triplet:
    anchor: str  # normalised query text
    positive: str  # normalised display of an approved target
    negative: str  # normalised display of a hard negative


def mine_hard_negatives(
    suggester, mappings: Sequence[ApprovedMapping], per_query: int = 3, where=None
) -> list[tuple[str, ...]]:
    """For each mapping, the codes the suggester ranks highest that are not one of its targets.

    `suggester` is a `models.suggest.Suggester` (the champion, or the bundled model): its mistakes on
    approved codes are exactly what the challenger must learn to rank lower.
    """
    codes = [c.code for c in suggester.terminology]
    out = []
    for candidates, mapping in zip(suggester.candidates([m.item() for m in mappings], where), mappings):
        order = np.argsort(-suggester.fusion.score(candidates.features), kind="stable")
        wrong = [codes[candidates.pool[j]] for j in order if codes[candidates.pool[j]] not in mapping.targets]
        out.append(tuple(wrong[:per_query]))
    return out


def triplets(
    mappings: Sequence[ApprovedMapping],
    mined: Sequence[Sequence[str]],
    display: dict[str, str],
    max_pairs: int | None = None,
) -> list[Triplet]:
    """(query, approved target, hardest negative) per (source, target): a reviewer's negative first.

    `max_pairs` keeps a deterministic subsample (by hash of source and target), so that a rerun on the
    same release trains on the same pairs.
    """
    from models.text import normalize

    out: list[tuple[int, Triplet]] = []
    for mapping, mined_codes in zip(mappings, mined):
        negatives = [c for c in (*mapping.negatives, *mined_codes) if c in display and c not in mapping.targets]
        if not negatives:
            continue
        anchor = normalize(mapping.query_text())
        for index, target in enumerate(t for t in mapping.targets if t in display):
            negative = negatives[index % len(negatives)]  # several targets: spread over the negatives
            key = _code_hash(f"{mapping.source_code}>{target}")
            out.append((key, Triplet(anchor, normalize(display[target]), normalize(display[negative]))))
    out.sort(key=lambda pair: pair[0])
    return [t for _, t in (out[:max_pairs] if max_pairs else out)]
