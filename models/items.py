"""The mapping core's boundary types: what goes in (source items) and what comes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Context columns that describe *what* was measured; their values join the query text so that
# "Glucose" + specimen "Ser/Plas" + unit "mg/dL" can match the right LOINC code.
DESCRIPTIVE_CONTEXT = ("specimen", "system", "unit", "units", "property", "method", "scale")


@dataclass(frozen=True)
class SourceItem:
    code: str
    text: str
    context: dict[str, str] = field(default_factory=dict)

    def query_text(self) -> str:
        extras = [self.context[k] for k in DESCRIPTIVE_CONTEXT if self.context.get(k)]
        return " ".join([self.text, *extras])


@dataclass
class Suggestion:
    code: str
    display: str
    score: float  # fused P(correct), 0..1
    rank: int  # 1 = best
    evidence: dict[str, Any]
