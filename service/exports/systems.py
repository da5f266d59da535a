"""Identifiers of terminologies in each standard: FHIR system URIs, SSSOM prefixes, OMOP vocabulary ids."""

from __future__ import annotations

import re

from service.store.tables import Project

# catalog name -> (FHIR system URI, SSSOM prefix, SSSOM prefix expansion, OMOP vocabulary_id)
KNOWN = {
    "icd10cm": ("http://hl7.org/fhir/sid/icd-10-cm", "ICD10CM", "http://purl.bioontology.org/ontology/ICD10CM/", "ICD10CM"),
    "loinc": ("http://loinc.org", "LOINC", "https://loinc.org/", "LOINC"),
    "snomed": ("http://snomed.info/sct", "SNOMEDCT", "http://snomed.info/id/", "SNOMED"),
    "rxnorm": ("http://www.nlm.nih.gov/research/umls/rxnorm", "RXNORM", "http://purl.bioontology.org/ontology/RXNORM/", "RxNorm"),
}


def conceptmap_url(project: Project) -> str:
    """The canonical URL of a project's ConceptMap (what `$translate?url=` names)."""
    return f"urn:crosswalk:conceptmap:{project.id}"


def target_system(name: str) -> str:
    return KNOWN[name][0] if name in KNOWN else f"urn:crosswalk:terminology:{name}"


def target_prefix(name: str) -> tuple[str, str]:
    if name in KNOWN:
        return KNOWN[name][1], KNOWN[name][2]
    return re.sub(r"[^A-Za-z0-9]", "", name).upper() or "TARGET", f"urn:crosswalk:terminology:{name}:"


def omop_vocabulary(name: str) -> str:
    return KNOWN[name][3] if name in KNOWN else name[:20]


def source_vocabulary(project: Project) -> str:
    """OMOP's source_vocabulary_id is at most 20 characters."""
    return (re.sub(r"[^A-Za-z0-9]+", "_", project.source_system).strip("_").upper() or "LOCAL")[:20]


def omop_concept_id(target_terminology: str, code: str | None) -> int:
    """An OMOP concept_id when the target is an OMOP vocabulary export (its codes are concept_ids), else 0."""
    if code and code.isdigit() and target_terminology.lower().startswith("omop"):
        return int(code)
    return 0


def computable_name(text: str) -> str:
    """FHIR `name`: starts with a capital letter, letters/digits/underscore only."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "ConceptMap"
    return name if name[0].isalpha() else f"Map{name}"
