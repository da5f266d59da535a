"""Which coding systems are standard terminologies, whatever a sender calls them.

HL7 v2 names a coding system by a table-0396 mnemonic (``LN``, ``SCT``, ``I10``...), sometimes by a
home-grown spelling (``LOINC``, ``SNOMED``) or an OID; FHIR by a URI (``http://loinc.org``) or
``urn:oid:``. Everything that resolves to none of them is a local code: the thing a team maps.
"""

from __future__ import annotations

import re

# canonical name -> every spelling seen for it (compared upper-cased, trimmed)
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "LOINC": ("LN", "LOINC", "HTTP://LOINC.ORG", "2.16.840.1.113883.6.1"),
    "SNOMED CT": (
        "SCT",
        "SNM",
        "SNM3",
        "SNOMED",
        "SNOMEDCT",
        "SNOMED CT",
        "SNOMED-CT",
        "HTTP://SNOMED.INFO/SCT",
        "2.16.840.1.113883.6.96",
    ),
    "ICD-10-CM": ("I10C", "ICD10CM", "ICD-10-CM", "HTTP://HL7.ORG/FHIR/SID/ICD-10-CM", "2.16.840.1.113883.6.90"),
    "ICD-10": ("I10", "ICD10", "ICD-10", "HTTP://HL7.ORG/FHIR/SID/ICD-10", "2.16.840.1.113883.6.3"),
    "ICD-10-PCS": ("I10P", "ICD10PCS", "HTTP://WWW.CMS.GOV/MEDICARE/CODING/ICD10", "2.16.840.1.113883.6.4"),
    "ICD-9-CM": (
        "I9",
        "I9C",
        "I9CM",
        "ICD9",
        "ICD9CM",
        "ICD-9-CM",
        "HTTP://HL7.ORG/FHIR/SID/ICD-9-CM",
        "2.16.840.1.113883.6.103",
        "2.16.840.1.113883.6.104",
        "2.16.840.1.113883.6.2",
    ),
    "RxNorm": ("RXNORM", "RXN", "HTTP://WWW.NLM.NIH.GOV/RESEARCH/UMLS/RXNORM", "2.16.840.1.113883.6.88"),
    "CPT": ("C4", "C5", "CPT", "CPT4", "CPT-4", "HTTP://WWW.AMA-ASSN.ORG/GO/CPT", "2.16.840.1.113883.6.12"),
    "HCPCS": ("HCPCS", "HCPT", "HTTP://WWW.CMS.GOV/MEDICARE/CODING/HCPCSRELEASECODESETS", "2.16.840.1.113883.6.285"),
    "UCUM": ("UCUM", "ISO+", "ANS+", "HTTP://UNITSOFMEASURE.ORG", "2.16.840.1.113883.6.8"),
    "CVX": ("CVX", "HTTP://HL7.ORG/FHIR/SID/CVX", "2.16.840.1.113883.12.292"),
    "MVX": ("MVX", "HTTP://HL7.ORG/FHIR/SID/MVX", "2.16.840.1.113883.12.227"),
    "NDC": ("NDC", "HTTP://HL7.ORG/FHIR/SID/NDC", "2.16.840.1.113883.6.69"),
    "ATC": ("ATC", "WHOATC", "HTTP://WWW.WHOCC.NO/ATC", "2.16.840.1.113883.6.73"),
    "NCI Thesaurus": ("NCIT", "NCI", "HTTP://NCIMETA.NCI.NIH.GOV", "2.16.840.1.113883.3.26.1.1"),
    "DICOM": ("DCM", "HTTP://DICOM.NEMA.ORG/RESOURCES/ONTOLOGY/DCM", "1.2.840.10008.2.16.4"),
}
_CANONICAL = {spelling: name for name, spellings in _SPELLINGS.items() for spelling in spellings}
# HL7's own vocabularies (v2 tables, FHIR/THO code systems) are standard too, but not terminologies to map to.
_HL7_TABLE = re.compile(
    r"^(HL7\d{3,4}|HTTP://TERMINOLOGY\.HL7\.ORG/CODESYSTEM/.+|HTTP://HL7\.ORG/FHIR/.+|2\.16\.840\.1\.113883\.(12|5|18|4\.642)\..+)$"
)

#: the standards a team maps local codes *to*: a sender that already used one of these needs no review
MAPPING_TARGETS = frozenset(
    {"LOINC", "SNOMED CT", "ICD-10-CM", "ICD-10", "ICD-10-PCS", "ICD-9-CM", "RxNorm", "CPT", "CVX"}
)


def standard_system(system: str | None) -> str | None:
    """The canonical name of a standard coding system (``"LOINC"``, ``"HL7 table"``...), None for a local one."""
    if not system:
        return None
    key = system.strip().upper()
    if key.startswith("URN:OID:"):
        key = key[8:]
    name = _CANONICAL.get(key)
    if name is None and _HL7_TABLE.match(key):
        return "HL7 table"
    return name


def is_local(system: str | None) -> bool:
    """True for a code the sender made up (or whose system it did not say)."""
    return standard_system(system) is None
