"""What changed between two releases of one terminology: a pure function of two `Terminology`s.

A code counts as *usable* when it is active and not marked non-billable: an ICD-10-CM code that
becomes a category (expanded into subcodes) can no longer be coded, so for a mapping it is gone
just as surely as a deleted one. Each usable code of the old release is then either unchanged,
renamed (its display changed), retired (no longer usable, no successor named) or replaced
(no longer usable, and the release names successors: OMOP `Concept replaced by` / `Maps to`,
or the new subcodes of an expanded ICD-10-CM code). Usable codes new to the release are added.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from models.terminology import Concept, Terminology

MAX_REPLACEMENTS = 25  # an expanded code can have dozens of subcodes; a reviewer needs the first few
_SPACE = re.compile(r"\s+")


class ChangeKind(StrEnum):
    added = "added"
    retired = "retired"
    replaced = "replaced"
    renamed = "renamed"


@dataclass(frozen=True)
class ConceptChange:
    code: str
    kind: ChangeKind
    old_display: str | None = None
    new_display: str | None = None
    replacements: tuple[str, ...] = ()  # successor codes the new release names, best first
    detail: str = ""  # why, in words: "deleted", "inactive (U)", "now a category with 7 subcodes"


@dataclass(frozen=True)
class ReleaseDiff:
    name: str
    old_version: str
    new_version: str
    changes: tuple[ConceptChange, ...] = field(default_factory=tuple)

    def of(self, kind: ChangeKind) -> list[ConceptChange]:
        return [c for c in self.changes if c.kind == kind]

    def counts(self) -> dict[str, int]:
        return {kind.value: len(self.of(kind)) for kind in ChangeKind}

    def by_code(self) -> dict[str, ConceptChange]:
        return {c.code: c for c in self.changes}


def usable(concept: Concept | None) -> bool:
    """A code a mapping may point to: present, active, and not a non-billable header."""
    return concept is not None and concept.active and concept.attributes.get("billable") is not False


def diff_releases(old: Terminology, new: Terminology) -> ReleaseDiff:
    """Added, retired, replaced and renamed codes from `old` to `new` (sorted by code)."""
    children = _children(new)
    changes: list[ConceptChange] = []
    for concept in old:
        if not usable(concept):
            continue
        after = new.get(concept.code)
        if not usable(after):
            changes.append(_gone(concept, after, new, old, children))
        elif _normal(after.display) != _normal(concept.display):
            changes.append(ConceptChange(concept.code, ChangeKind.renamed, concept.display, after.display))
    for concept in new:
        if usable(concept) and not usable(old.get(concept.code)):
            changes.append(ConceptChange(concept.code, ChangeKind.added, None, concept.display))
    changes.sort(key=lambda c: (c.code, c.kind))
    return ReleaseDiff(old.name, old.version, new.version, tuple(changes))


def _gone(concept: Concept, after: Concept | None, new: Terminology, old: Terminology, children) -> ConceptChange:
    successors = [code for code in _successors(concept.code, after) if usable(new.get(code))]
    if after is None:
        detail = "deleted"
    elif not after.active:
        reason = after.attributes.get("invalid_reason")
        detail = f"inactive ({reason})" if reason else "inactive"
    else:
        below = len(_usable_below(concept.code, new, children))
        detail = f"no longer billable: now a category with {below} billable subcodes"
    if after is not None and after.attributes.get("billable") is False:
        # an expanded code: its new subcodes (those the old release did not have) are the successors
        successors = [c for c in _usable_below(concept.code, new, children) if not usable(old.get(c))] or successors
    kind = ChangeKind.replaced if successors else ChangeKind.retired
    display = after.display if after is not None else None
    return ConceptChange(concept.code, kind, concept.display, display, tuple(successors[:MAX_REPLACEMENTS]), detail)


def _successors(code: str, after: Concept | None) -> list[str]:
    """Successors the release itself names (OMOP loader: attribute `replaced_by`)."""
    if after is None:
        return []
    named = after.attributes.get("replaced_by") or []
    return [c for c in (named if isinstance(named, list) else [named]) if c != code]


def _children(terminology: Terminology) -> dict[str, list[str]]:
    below: dict[str, list[str]] = {}
    for concept in terminology:
        for parent in concept.parents:
            below.setdefault(parent, []).append(concept.code)
    return below


def _usable_below(code: str, terminology: Terminology, children: dict[str, list[str]]) -> list[str]:
    """Usable descendants, breadth first (nearest subcodes first), each once."""
    found: list[str] = []
    queue, seen = list(children.get(code, [])), {code}
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if usable(terminology.get(current)):
            found.append(current)
        queue.extend(children.get(current, []))
    return found


def _normal(text: str) -> str:
    """Displays compare without case or whitespace differences (a re-typeset title is not a rename)."""
    return _SPACE.sub(" ", text).strip().casefold()


def changed_codes(diff: ReleaseDiff, kinds: Iterable[ChangeKind]) -> set[str]:
    wanted = set(kinds)
    return {c.code for c in diff.changes if c.kind in wanted}
