"""What a reviewer needs beside each candidate: its LOINC axes, how the source's unit and specimen
compare with them, and why it ranks where it does, in words.

The unit -> LOINC PROPERTY table below is deliberately small and local to the review page: it only
flags a visible mismatch (a 10*3/uL count against a mg/dL candidate). Ranking that uses units belongs
in models/ and replaces this table once it exists there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from models.fusion import content_words
from models.terminology import Concept
from service.concept_search import needs_second_look, words_of

AXES = (
    ("component", "Component"),
    ("property", "Property"),
    ("time", "Time"),
    ("system", "System"),
    ("scale", "Scale"),
    ("method", "Method"),
)
SCORE_MEANING = "the model's calibrated probability that this is the right concept"

# Source unit (folded, spaces dropped) -> the LOINC PROPERTY values it can measure.
_MASS_CONCENTRATION = ("mg/dl", "g/dl", "g/l", "mg/l", "ug/ml", "ng/ml", "ug/dl", "ng/dl", "pg/ml", "ug/l", "ng/l")
_SUBSTANCE_CONCENTRATION = ("mmol/l", "umol/l", "nmol/l", "pmol/l", "meq/l", "mol/l")
_COUNTS = (
    "10*3/ul",
    "10*9/l",
    "10*6/ul",
    "10*12/l",
    "/ul",
    "/mm3",
    "k/ul",
    "10^3/ul",
    "10^9/l",
    "10^6/ul",
    "x10e3/ul",
    "/l",
)
UNIT_PROPERTIES: dict[str, frozenset[str]] = {
    **{u: frozenset({"MCnc"}) for u in _MASS_CONCENTRATION},
    **{u: frozenset({"SCnc"}) for u in _SUBSTANCE_CONCENTRATION},
    **{u: frozenset({"NCnc"}) for u in _COUNTS},
    **{u: frozenset({"CCnc"}) for u in ("u/l", "iu/l", "[iu]/l", "ukat/l")},
    "%": frozenset({"MFr", "NFr", "VFr", "SFr", "CFr", "MFr.DF", "NFr.DF"}),
    "fl": frozenset({"EntVol"}),
    "pg": frozenset({"EntMass"}),
    "s": frozenset({"Time"}),
    "mm[hg]": frozenset({"Pres", "PPres"}),
    "mosm/kg": frozenset({"Osmol"}),
}
PROPERTY_NAMES = {
    "MCnc": "mass concentration",
    "SCnc": "substance concentration",
    "NCnc": "number concentration (count)",
    "CCnc": "catalytic concentration",
    "MFr": "mass fraction",
    "NFr": "number fraction",
    "VFr": "volume fraction",
}
# Source specimen words -> LOINC SYSTEM values that agree with them.
SPECIMEN_SYSTEMS: dict[str, frozenset[str]] = {
    "serum": frozenset({"Ser", "Ser/Plas", "Ser/Plas/Bld"}),
    "plasma": frozenset({"Plas", "Ser/Plas", "Ser/Plas/Bld", "BldV"}),
    "blood": frozenset({"Bld", "BldV", "BldA", "BldC", "Ser/Plas/Bld", "Bld.dot"}),
    "urine": frozenset({"Urine", "Urine sed"}),
    "csf": frozenset({"CSF"}),
}
SOURCE_UNIT_KEYS = ("unit", "units")
SOURCE_SPECIMEN_KEYS = ("specimen", "system")


@dataclass
class Check:
    """One comparison of the source's context with a candidate: agrees, conflicts or unknown (None)."""

    what: str
    agrees: bool | None
    text: str


@dataclass
class CandidateEvidence:
    axes: list[tuple[str, str]] = field(default_factory=list)  # (axis label, value), LOINC only
    facts: list[tuple[str, str]] = field(default_factory=list)  # example units, class, status
    checks: list[Check] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)  # source words found in the candidate
    missing: list[str] = field(default_factory=list)  # source words the candidate lacks
    why: list[str] = field(default_factory=list)  # the ranking in words
    warning: str | None = None  # DISCOURAGED, DEPRECATED, INACTIVE

    @property
    def conflicts(self) -> list[Check]:
        return [c for c in self.checks if c.agrees is False]


def unit_key(unit: str) -> str:
    return re.sub(r"\s+", "", unit).casefold()


def explain(item_text: str, context: dict[str, Any], suggestions: list, terminology) -> list[CandidateEvidence]:
    """Evidence for each suggestion, in their order; `terminology` may be None (not loaded)."""
    top = suggestions[0].score if suggestions else None
    return [
        _one(item_text, context, s, rank, top, terminology.get(s.code) if terminology is not None else None)
        for rank, s in enumerate(suggestions, start=1)
    ]


def _one(
    item_text: str, context: dict[str, Any], suggestion, rank: int, top: float | None, concept: Concept | None
) -> CandidateEvidence:
    attributes = concept.attributes if concept else {}
    found = CandidateEvidence(warning=needs_second_look(concept) if concept else None)
    if attributes.get("component") or attributes.get("property"):
        found.axes = [(label, str(attributes.get(key) or "-")) for key, label in AXES]
    for key, label in (("units", "Example units"), ("class", "Class"), ("status", "Status")):
        if attributes.get(key):
            found.facts.append((label, str(attributes[key])))
    found.checks = _checks(context, attributes)
    _words(item_text, suggestion, concept, found)
    found.why = _why(suggestion, rank, top, found)
    return found


def _source_value(context: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = context.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _checks(context: dict[str, Any], attributes: dict[str, Any]) -> list[Check]:
    checks = []
    unit, prop = _source_value(context, SOURCE_UNIT_KEYS), attributes.get("property")
    if unit and prop:
        expected = UNIT_PROPERTIES.get(unit_key(unit))
        examples = {unit_key(u) for u in re.split(r"[;,]", str(attributes.get("units") or "")) if u.strip()}
        named = PROPERTY_NAMES.get(prop, prop)
        if unit_key(unit) in examples:
            checks.append(Check("unit", True, f"source unit {unit} is one of the candidate's example units"))
        elif expected is None:
            checks.append(
                Check(
                    "unit", None, f"source unit {unit}: not in the unit table, compare with {prop} ({named}) yourself"
                )
            )
        elif prop in expected:
            checks.append(Check("unit", True, f"source unit {unit} measures {prop} ({named}), as the candidate does"))
        else:
            wanted = ", ".join(sorted(expected))
            checks.append(
                Check(
                    "unit",
                    False,
                    f"unit mismatch: source unit {unit} measures {wanted}, the candidate is {prop} ({named})",
                )
            )
    specimen, system = _source_value(context, SOURCE_SPECIMEN_KEYS), attributes.get("system")
    if specimen and system:
        systems = set().union(*(SPECIMEN_SYSTEMS.get(w, frozenset()) for w in words_of(specimen)))
        if not systems:
            checks.append(Check("specimen", None, f"source specimen {specimen}: compare with system {system} yourself"))
        elif system in systems:
            checks.append(Check("specimen", True, f"source specimen {specimen} agrees with system {system}"))
        else:
            checks.append(
                Check(
                    "specimen",
                    False,
                    f"specimen mismatch: source specimen {specimen}, the candidate's system is {system}",
                )
            )
    return checks


def _words(item_text: str, suggestion, concept: Concept | None, found: CandidateEvidence) -> None:
    texts = concept.texts() if concept else [suggestion.display]
    evidence = suggestion.evidence or {}
    if evidence.get("matched_text"):
        texts = [*texts, evidence["matched_text"]]
    candidate_words = {w for t in texts for w in words_of(t)}
    words = list(dict.fromkeys(words_of(item_text)))
    meaningful = content_words(" ".join(words))  # "and", "of", "in" say nothing about a match
    source = [w for w in words if w in meaningful]
    found.matched = [
        w for w in source if w in candidate_words or any(c.startswith(w) for c in candidate_words if len(w) >= 3)
    ]
    found.missing = [w for w in source if w not in found.matched]


def _listed(words: list[str], most: int = 8) -> str:
    return ", ".join(words[:most]) + (f" and {len(words) - most} more" if len(words) > most else "")


def _why(suggestion, rank: int, top: float | None, found: CandidateEvidence) -> list[str]:
    evidence = suggestion.evidence or {}
    why = []
    if found.matched:
        why.append(f"words matched: {_listed(found.matched)}")
    if found.missing:
        why.append(f"source words it lacks: {_listed(found.missing)}")
    if evidence.get("matched_synonym") and evidence.get("matched_text"):
        why.append(f"matched through its synonym “{evidence['matched_text']}”")
    lexical, semantic = evidence.get("lexical"), evidence.get("semantic")
    if lexical is not None and semantic is not None:
        spelling = "close" if lexical >= 0.6 else "partly alike" if lexical >= 0.3 else "unlike"
        meaning = "close" if semantic >= 0.6 else "related" if semantic >= 0.3 else "distant"
        why.append(f"spelling {spelling} ({lexical:.2f}), meaning {meaning} ({semantic:.2f})")
    agreed = [c.what for c in found.checks if c.agrees]
    if agreed:
        why.append(f"context agrees: {', '.join(agreed)}")
    if found.conflicts:
        why.append(f"context conflicts: {', '.join(c.what for c in found.conflicts)}")
    if rank == 1:
        why.append("ranked first: the highest score")
    elif top is not None:
        why.append(f"ranked {rank}: {top - suggestion.score:.2f} below candidate 1")
    return why
