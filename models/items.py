"""The mapping core's boundary types: what goes in (source items) and what comes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Calibrated P(correct) bands of a suggestion. Below CONFIDENT the best candidate is more likely wrong
# than right: the item is marked "no confident match" so that reviewers start there.
CONFIDENT = 0.5
HIGH = 0.9
NO_CONFIDENT_MATCH = "no confident match"
# An item's match confidence as the review queue, the API and the CLI show it.
WEAK, CONFIDENT_MATCH = "weak", "confident"


@dataclass(frozen=True)
class SourceItem:
    code: str
    text: str
    # Context columns (specimen/fluid, unit, category, frequency ...). They are evidence about what
    # was measured (see models.axes), never matched as if they were part of the name.
    context: dict[str, str] = field(default_factory=dict)

    def query_text(self) -> str:
        """The text the matchers compare with concept names: the source's own name."""
        return self.text


@dataclass
class Suggestion:
    code: str
    display: str
    score: float  # fused P(correct), 0..1
    rank: int  # 1 = best
    evidence: dict[str, Any]

    @property
    def band(self) -> str:
        """ "high" (P >= 0.9), "medium", or "low": a low best candidate is no confident match."""
        return "high" if self.score >= HIGH else "medium" if self.score >= CONFIDENT else "low"


def weak_score(best: float | None) -> bool:
    """The rule behind "no confident match": no candidate at all, or a best P(correct) below CONFIDENT."""
    return best is None or best < CONFIDENT


def no_confident_match(suggestions: Sequence[Suggestion]) -> bool:
    """True when an item's best candidate is weak (or there is none): a reviewer should start here."""
    return weak_score(suggestions[0].score if suggestions else None)


def match_confidence(best: float | None) -> str:
    """WEAK (no confident match) or CONFIDENT_MATCH, from the best candidate's score (None: no candidate)."""
    return WEAK if weak_score(best) else CONFIDENT_MATCH
