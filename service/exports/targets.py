"""What a format needs from the catalog before it is written: the target terminology's identity, and
for OMOP-keyed formats the OMOP concept of every released target.

A LOINC (SNOMED, RxNorm...) target is resolved through a loaded OMOP vocabulary, by vocabulary_id and
concept_code; when none is loaded, or a target is missing from it, the format is refused with what to
load. A zero concept id is written only for codes released as unmappable, as OMOP's convention has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace

from models.catalog import Catalog
from models.fields.serving import BUNDLED_SYSTEMS
from models.systems import OMOP, CodeSystem, system_for
from service.exports.bundle import OmopConcept, ReleaseBundle
from service.exports.formats import ExportFormat
from service.store.errors import Conflict
from service.store.tables import Status

LOAD_OMOP = (
    "load an OMOP vocabulary (Athena CONCEPT.csv) with `crosswalk terminology load --format omop PATH --name NAME`"
)
SHOWN = 5  # missing codes named in a refusal


class MissingOmopConcepts(Conflict):
    """A format needs OMOP concept ids that the catalog cannot give (a 409 in the API)."""


def prepare(bundle: ReleaseBundle, fmt: ExportFormat, catalog: Catalog | None) -> ReleaseBundle:
    bundle = with_identity(bundle, catalog)
    if fmt.needs_omop_concepts:
        bundle = replace(bundle, omop_concepts=omop_concepts(catalog, bundle, fmt))
    return bundle


def with_identity(bundle: ReleaseBundle, catalog: Catalog | None) -> ReleaseBundle:
    """The bundle with its target's identity as the catalog recorded it (without a catalog: from the name)."""
    return replace(bundle, target=identity(catalog, bundle.project.target_terminology))


def identity(catalog: Catalog | None, name: str) -> CodeSystem | None:
    if name in BUNDLED_SYSTEMS and (catalog is None or name not in catalog.names()):
        return BUNDLED_SYSTEMS[name]  # a bundled target data model (field mappings)
    return catalog.identity(name) if catalog is not None else None


def released_targets(bundle: ReleaseBundle) -> set[str]:
    return {e.target_code for e in bundle.entries if e.status != Status.unmappable and e.target_code}


def refusal(fmt: ExportFormat, catalog: Catalog | None, name: str) -> str | None:
    """Why `fmt` cannot be written for a project mapping to terminology `name`, from catalog headers alone
    (cheap enough for every page); None when it may be. Targets missing from the vocabulary are found
    only when the file is written."""
    if not fmt.needs_omop_concepts:
        return None
    target = identity(catalog, name) or system_for(None, name)
    if target.uri == OMOP.uri:
        if catalog is None or name not in catalog.holding(OMOP):
            return f"the {fmt.name} export reads concept ids from the target {name!r}, which is not loaded: {LOAD_OMOP}"
        return None
    if target.omop_vocabulary is None:
        return (
            f"the {fmt.name} export needs OMOP concept ids, and {name!r} ({target.uri}) is not in the OMOP vocabularies"
        )
    if catalog is None or not catalog.holding(OMOP):
        return (
            f"the {fmt.name} export needs the OMOP concept id of each {target.title} target, "
            f"and no OMOP vocabulary is loaded: {LOAD_OMOP}"
        )
    return None


def omop_concepts(catalog: Catalog | None, bundle: ReleaseBundle, fmt: ExportFormat) -> dict[str, OmopConcept]:
    """Every released target's OMOP concept, or `MissingOmopConcepts` saying what to load."""
    name, target = bundle.project.target_terminology, bundle.target_system
    why = refusal(fmt, catalog, name)
    if why:
        raise MissingOmopConcepts(why)
    codes = released_targets(bundle)
    if not codes:
        return {}
    assert catalog is not None  # refusal() said so
    if target.uri == OMOP.uri:  # the target is an OMOP vocabulary: its codes are concept ids
        sources, found = [name], _look_up(catalog, [name], codes, by_id=True)
    else:
        sources = catalog.holding(OMOP)
        found = _look_up(catalog, sources, codes, vocabulary=target.omop_vocabulary or "")
    missing = sorted(codes - found.keys())
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        raise MissingOmopConcepts(
            f"the {fmt.name} export needs an OMOP concept for every released target; {len(missing)} "
            f"{target.title} code(s) are not in {', '.join(sources)}: {shown}. Load a release that holds them"
        )
    return found


def _look_up(
    catalog: Catalog, sources: Iterable[str], codes: set[str], *, vocabulary: str = "", by_id: bool = False
) -> dict[str, OmopConcept]:
    """Stream the OMOP vocabularies once each; a valid concept wins over an invalid one for the same code."""
    # The catalog writes attributes with json.dumps: lines without this text cannot match and are not parsed.
    containing = "" if by_id else f'"vocabulary": {json.dumps(vocabulary)}'
    found: dict[str, OmopConcept] = {}
    valid: set[str] = set()
    for source in sources:
        for concept in catalog.stream(source, containing):
            attributes = concept.attributes
            key = concept.code if by_id else str(attributes.get("source_code") or "")
            if key not in codes or (not by_id and attributes.get("vocabulary") != vocabulary) or key in valid:
                continue
            found[key] = OmopConcept(
                int(concept.code), str(attributes.get("vocabulary") or ""), str(attributes.get("domain") or "")
            )
            if concept.active:
                valid.add(key)
    return found
