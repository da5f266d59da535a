"""Standard files for a release: FHIR ConceptMap R4/R5, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP, Usagi CSV.

Each writer is a pure function of a `ReleaseBundle` (`bundle.py`); `formats.FORMATS` is the one list of
formats; `targets` resolves what a format needs from the catalog (the target's identity, OMOP concept
ids); `export` puts the three together.
"""

from __future__ import annotations

from service.exports.bundle import Export, OmopConcept, ReleaseBundle

__all__ = ["Export", "OmopConcept", "ReleaseBundle", "export"]


def export(bundle: ReleaseBundle, fmt: str, catalog=None) -> Export:
    """The release file in format `fmt`; `catalog` (a `models.catalog.Catalog`) supplies the target's
    identity and OMOP concept ids. Raises `Conflict` when the format needs what the catalog lacks."""
    from service.exports.formats import format_named  # the writers import this package's bundle
    from service.exports.targets import prepare

    spec = format_named(fmt)
    ready = prepare(bundle, spec, catalog)
    stem = f"project-{bundle.project.id}-release-{bundle.release.number}"
    return Export(spec.write(ready), spec.media_type, f"{stem}-{spec.file_suffix}")
