"""Standard files for a release: FHIR ConceptMap R4/R5, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP, Usagi CSV.

Each exporter is a pure function of a `ReleaseBundle`; `export` picks one by format name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from service.store.tables import EntryBase, Project, Release

ExportFormat = Literal["fhir-r4", "fhir-r5", "sssom", "omop", "usagi"]


@dataclass(frozen=True)
class ReleaseBundle:
    project: Project
    release: Release
    entries: Sequence[EntryBase]


@dataclass(frozen=True)
class Export:
    content: str
    media_type: str
    filename: str


def export(bundle: ReleaseBundle, fmt: ExportFormat) -> Export:
    from service.exports import fhir, omop, sssom, usagi  # each format module imports only what it needs

    renderers: dict[str, tuple[Callable[[ReleaseBundle], str], str, str]] = {
        "fhir-r4": (fhir.conceptmap_r4_json, "application/fhir+json", "conceptmap-r4.json"),
        "fhir-r5": (fhir.conceptmap_r5_json, "application/fhir+json", "conceptmap-r5.json"),
        "sssom": (sssom.sssom_tsv, "text/tab-separated-values", "mappings.sssom.tsv"),
        "omop": (omop.source_to_concept_map_csv, "text/csv", "source_to_concept_map.csv"),
        "usagi": (usagi.usagi_csv, "text/csv", "usagi.csv"),
    }
    render, media_type, suffix = renderers[fmt]
    stem = f"project-{bundle.project.id}-release-{bundle.release.number}"
    return Export(render(bundle), media_type, f"{stem}-{suffix}")
