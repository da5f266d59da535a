"""Identifiers crosswalk mints for what it publishes: ConceptMap URLs, names, OMOP source vocabulary ids.

A target terminology's identifiers (FHIR system, SSSOM prefix, OMOP vocabulary) are `models.systems`."""

from __future__ import annotations

import re

from service.store.tables import Project


def conceptmap_url(project: Project) -> str:
    """The canonical URL of a project's ConceptMap (what `$translate?url=` names)."""
    return f"urn:crosswalk:conceptmap:{project.id}"


def source_vocabulary(project: Project) -> str:
    """OMOP's source_vocabulary_id is at most 20 characters."""
    return (re.sub(r"[^A-Za-z0-9]+", "_", project.source_system).strip("_").upper() or "LOCAL")[:20]


def computable_name(text: str) -> str:
    """FHIR `name`: starts with a capital letter, letters/digits/underscore only."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "ConceptMap"
    return name if name[0].isalpha() else f"Map{name}"
