"""What every export writer reads: a release with its project, entries and resolved target identity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.systems import CodeSystem, system_for
from service.store.tables import EntryBase, Project, Release


@dataclass(frozen=True)
class OmopConcept:
    """The OMOP concept a released target code stands for (OMOP exports write its id, never 0)."""

    concept_id: int
    vocabulary_id: str
    domain_id: str = ""


@dataclass(frozen=True)
class ReleaseBundle:
    project: Project
    release: Release
    entries: Sequence[EntryBase]
    # The target terminology's identity as loaded (`service.exports.targets`); None: guessed from its name.
    target: CodeSystem | None = None
    # target code -> OMOP concept, for the formats that need OMOP concept ids (resolved before writing).
    omop_concepts: Mapping[str, OmopConcept] | None = None

    @property
    def target_system(self) -> CodeSystem:
        return self.target or system_for(None, self.project.target_terminology)

    def omop_concept(self, code: str | None) -> OmopConcept:
        """The resolved concept of a released target; a writer asking for one that was not resolved is a bug."""
        if self.omop_concepts is None or code not in self.omop_concepts:
            raise LookupError(f"no OMOP concept resolved for target {code!r}; resolve with service.exports.targets")
        return self.omop_concepts[code]


@dataclass(frozen=True)
class Export:
    content: str
    media_type: str
    filename: str
