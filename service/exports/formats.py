"""The one list of export formats: name, label, media type, file name, writer and what each needs.

The API (query validation), the UI (download links) and the CLI (`--format`) all read `FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from service.exports import fhir, mapping_spec, omop, sssom, usagi
from service.exports.bundle import ReleaseBundle
from service.store.errors import Invalid


@dataclass(frozen=True)
class ExportFormat:
    name: str
    label: str
    media_type: str
    file_suffix: str  # after "project-<id>-release-<n>-"
    write: Callable[[ReleaseBundle], str]
    # OMOP concept ids for every released target: from the target itself when it is an OMOP vocabulary,
    # else looked up in a loaded OMOP vocabulary (service.exports.targets); without them the format is refused.
    needs_omop_concepts: bool = False


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "fhir-r4", "FHIR ConceptMap R4", "application/fhir+json", "conceptmap-r4.json", fhir.conceptmap_r4_json
        ),
        ExportFormat(
            "fhir-r5", "FHIR ConceptMap R5", "application/fhir+json", "conceptmap-r5.json", fhir.conceptmap_r5_json
        ),
        ExportFormat("sssom", "SSSOM TSV", "text/tab-separated-values", "mappings.sssom.tsv", sssom.sssom_tsv),
        ExportFormat(
            "omop",
            "OMOP source_to_concept_map",
            "text/csv",
            "source_to_concept_map.csv",
            omop.source_to_concept_map_csv,
            needs_omop_concepts=True,
        ),
        ExportFormat("usagi", "Usagi CSV", "text/csv", "usagi.csv", usagi.usagi_csv, needs_omop_concepts=True),
        ExportFormat(
            "mapping-spec",
            "Field mapping specification CSV",
            "text/csv",
            "mapping-spec.csv",
            mapping_spec.mapping_spec_csv,
        ),
        ExportFormat(
            "mapping-spec-md",
            "Field mapping specification (Markdown)",
            "text/markdown",
            "mapping-spec.md",
            mapping_spec.mapping_spec_markdown,
        ),
    )
}
FormatName = Literal[tuple(FORMATS)]  # type: ignore[valid-type]  # FastAPI validates with it: a 422 lists the names
MEDIA_TYPES = sorted({f.media_type for f in FORMATS.values()})


class UnknownFormat(Invalid):
    """A format name that is not in `FORMATS` (a 422 in the API, a one-line error in the CLI)."""


def format_named(name: str) -> ExportFormat:
    """The format called `name`, or an error that lists the known ones."""
    if name not in FORMATS:
        raise UnknownFormat(f"unknown export format {name!r}; one of {', '.join(FORMATS)}")
    return FORMATS[name]
