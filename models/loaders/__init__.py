"""Loaders for terminology release files, one module per official format.

Every loader is `load(path: Path, name: str) -> Terminology` and raises `TerminologyFormatError`
(file, line, problem) for a malformed or truncated file; nothing else escapes for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from models.systems import FORMAT_SYSTEMS
from models.terminology import Terminology, TerminologyFormatError

# format name -> module under models.loaders; imported lazily so one format's parser never slows
# another's start-up. ICD-10-CM is not here: it is built in (models.catalog, loaders/icd10cm.py).
FORMATS: dict[str, str] = {
    "loinc": "loinc",
    "rxnorm": "rxnorm",
    "snomed": "snomed",
    "omop": "omop",
    "fhir": "fhir",
    "icd10cm-codes": "icd10cm_codes",  # a CMS ICD-10-CM code file, e.g. an earlier year to diff against
}


def loader_for(fmt: str) -> Callable[[Path, str], Terminology]:
    if fmt not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"unknown terminology format {fmt!r}; known formats: {known}")
    return import_module(f"models.loaders.{FORMATS[fmt]}").load


def load_terminology(fmt: str, path: Path, name: str) -> Terminology:
    """Parse a release file; the terminology records the code system the format holds (its identity in
    exports), unless the file names its own (a FHIR CodeSystem's url)."""
    path = Path(path)
    if not path.exists():
        raise TerminologyFormatError(path, None, "no such file or directory")
    terminology = loader_for(fmt)(path, name)
    terminology.system = terminology.system or FORMAT_SYSTEMS.get(fmt)
    return terminology


__all__ = ["FORMATS", "TerminologyFormatError", "load_terminology", "loader_for"]
