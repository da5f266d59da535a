"""Standard files for a release: FHIR ConceptMap R4/R5, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP, Usagi CSV.

Each writer is a pure function of a `ReleaseBundle` (`bundle.py`); `formats.FORMATS` is the one list of
formats; `targets` resolves what a format needs from the catalog (the target's identity, OMOP concept
ids); `export` puts the three together.
"""

from __future__ import annotations

from models.catalog import Catalog
from service.exports.bundle import Export, OmopConcept, ReleaseBundle
from service.exports.formats import FORMATS, format_named
from service.exports.targets import prepare

__all__ = ["FORMATS", "Export", "OmopConcept", "ReleaseBundle", "export"]


def export(bundle: ReleaseBundle, fmt: str, catalog: Catalog | None = None) -> Export:
    """The release file in format `fmt`; `catalog` supplies the target's identity and OMOP concept ids
    (without one: the identity is guessed from the terminology's name, OMOP-keyed formats are refused).
    Raises `Conflict` when the format needs what the catalog lacks, `Invalid` for an unknown format."""
    spec = format_named(fmt)
    ready = prepare(bundle, spec, catalog)
    stem = f"project-{bundle.project.id}-release-{bundle.release.number}"
    return Export(spec.write(ready), spec.media_type, f"{stem}-{spec.file_suffix}")
