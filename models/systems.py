"""Code systems crosswalk knows by identity: FHIR system URI, SSSOM/CURIE prefix and OMOP vocabulary_id.

A loaded terminology records the URI of the system it holds (`Terminology.system`), whatever name it
was loaded under, so `loinc-2.78` exports as http://loinc.org. A system not listed here (a FHIR
CodeSystem with its own URL, a local list) still gets an identity: its URI and a prefix made from its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeSystem:
    uri: str  # the FHIR `system`
    title: str
    prefix: str  # the SSSOM / CURIE prefix
    prefix_uri: str  # what `prefix:` expands to in a curie_map
    omop_vocabulary: str | None = None  # OMOP vocabulary_id, where the OHDSI vocabularies carry the system


# System URIs as terminology.hl7.org registers them; SSSOM prefixes expand to BioPortal PURLs where
# BioPortal holds the system, else to the publisher's own site.
OMOP_URI = "https://fhir-terminology.ohdsi.org"
KNOWN: tuple[CodeSystem, ...] = (
    CodeSystem("http://loinc.org", "LOINC", "LOINC", "https://loinc.org/", "LOINC"),
    CodeSystem("http://snomed.info/sct", "SNOMED CT", "SNOMEDCT", "http://snomed.info/id/", "SNOMED"),
    CodeSystem(
        "http://hl7.org/fhir/sid/icd-10-cm",
        "ICD-10-CM",
        "ICD10CM",
        "http://purl.bioontology.org/ontology/ICD10CM/",
        "ICD10CM",
    ),
    CodeSystem(
        "http://hl7.org/fhir/sid/icd-9-cm",
        "ICD-9-CM",
        "ICD9CM",
        "http://purl.bioontology.org/ontology/ICD9CM/",
        "ICD9CM",
    ),
    CodeSystem(
        "http://hl7.org/fhir/sid/icd-10", "ICD-10", "ICD10", "http://purl.bioontology.org/ontology/ICD10/", "ICD10"
    ),
    CodeSystem(
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "RxNorm",
        "RXNORM",
        "http://purl.bioontology.org/ontology/RXNORM/",
        "RxNorm",
    ),
    CodeSystem("http://www.ama-assn.org/go/cpt", "CPT", "CPT", "http://purl.bioontology.org/ontology/CPT/", "CPT4"),
    CodeSystem("http://unitsofmeasure.org", "UCUM", "UCUM", "http://unitsofmeasure.org/", "UCUM"),
    CodeSystem("http://hl7.org/fhir/sid/ndc", "NDC", "NDC", "http://identifiers.org/ndc/", "NDC"),
    CodeSystem("http://www.whocc.no/atc", "ATC", "ATC", "http://purl.bioontology.org/ontology/ATC/", "ATC"),
    CodeSystem(OMOP_URI, "OMOP standardized vocabularies", "OMOP", "https://athena.ohdsi.org/search-terms/terms/"),
)
BY_URI = {system.uri: system for system in KNOWN}
OMOP = BY_URI[OMOP_URI]

# Loader format -> the system every terminology it loads holds. The FHIR loader reads the CodeSystem's
# own `url` instead; a format missing here records no system.
FORMAT_SYSTEMS = {
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10cm-codes": "http://hl7.org/fhir/sid/icd-10-cm",
    "omop": OMOP_URI,
}
# Catalog names that meant a system before terminologies recorded theirs (catalogs loaded earlier).
NAME_GUESSES = {
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
}


def system_for(uri: str | None, name: str) -> CodeSystem:
    """The identity of a terminology that recorded `uri` (None: an older load, known only by `name`)."""
    if uri is None:
        uri = NAME_GUESSES.get(name) or (OMOP_URI if name.lower().startswith("omop") else None)
    if uri in BY_URI:
        return BY_URI[uri]
    prefix = re.sub(r"[^A-Za-z0-9]", "", name).upper() or "TARGET"
    if uri:  # a system of its own (e.g. a FHIR CodeSystem's url): its URI, a prefix from the catalog name
        return CodeSystem(uri, name, prefix, uri if uri.endswith(("/", "#", ":")) else uri + "/")
    local = f"urn:crosswalk:terminology:{name}"
    return CodeSystem(local, name, prefix, f"{local}:")
