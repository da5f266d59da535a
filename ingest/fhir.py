"""FHIR resources in (Bundles, NDJSON, single resources), rows out in the same shape as HL7 v2's.

Observation gives a ``result`` row (``observation_*`` columns, value, unit, reference range...),
Condition a ``diagnosis`` row, Procedure a ``procedure`` row, MedicationRequest/MedicationStatement a
``medication`` row and Immunization an ``immunization`` row (``vaccine_*``). Of a concept's codings
the first local one (a system that is not a standard terminology, see ``ingest.coding``) is the
row's code, and the first standard one its alternate, so ``ingest.local_codes`` treats FHIR and v2
alike. Other resource types give no rows.

Resources are read as plain JSON, not through ``fhir.resources`` models: the rows need a dozen
elements, and a strict R4/R5 model would reject a whole Bundle for one element out of profile,
where here each document that cannot be read gets a reason and the rest still flow.

    documents = read_file("export.ndjson")   # or read_documents(raw_bytes)
    rows = [row for d in documents if d.ok for row in d.rows]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ingest.coding import is_local

Row = dict[str, str | int | float | None]
RESOURCE_KINDS = {
    "Observation": "result",
    "Condition": "diagnosis",
    "Procedure": "procedure",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
    "Immunization": "immunization",
}


@dataclass
class FhirDocument:
    """One Bundle, NDJSON line or resource as received, with its rows or the reason it could not be read."""

    index: int  # 0-based position in the file or stream (the NDJSON line number - 1)
    raw: bytes
    sha256: str
    line: int = 1
    resource_type: str = ""
    document_id: str = ""  # Bundle.id or the resource's id
    rows: list[Row] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read_documents(data: bytes | str, *, site: str = "") -> list[FhirDocument]:
    """A JSON resource or Bundle, or NDJSON (one resource per line); ``site`` when resources name none."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = data.removeprefix(b"\xef\xbb\xbf")
    stripped = data.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except (json.JSONDecodeError, UnicodeDecodeError):
        whole = None
    if isinstance(whole, dict):
        return [_document(stripped, whole, index=0, line=1, site=site)]
    documents = []
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            documents.append(_read_line(line.strip(), index=len(documents), line=number, site=site))
    return documents


def read_file(path: str | Path, *, site: str = "") -> list[FhirDocument]:
    """Every document of a ``.json`` or ``.ndjson`` file; errors name the file and line."""
    path = Path(path)
    documents = read_documents(path.read_bytes(), site=site)
    for document in documents:
        if document.error:
            document.error = f"{path}:{document.line}: {document.error}"
    return documents


def _read_line(raw: bytes, *, index: int, line: int, site: str) -> FhirDocument:
    try:
        resource = json.loads(raw)
    except UnicodeDecodeError as exc:
        return _failed(raw, index, line, f"not UTF-8 at byte {exc.start}: FHIR JSON must be UTF-8")
    except json.JSONDecodeError as exc:
        return _failed(raw, index, line, f"invalid JSON ({exc.msg} at column {exc.colno})")
    return _document(raw, resource, index=index, line=line, site=site)


def _failed(raw: bytes, index: int, line: int, reason: str) -> FhirDocument:
    return FhirDocument(index=index, raw=raw, sha256=hashlib.sha256(raw).hexdigest(), line=line, error=reason)


def _document(raw: bytes, resource: object, *, index: int, line: int, site: str) -> FhirDocument:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return _failed(raw, index, line, "not a FHIR resource: a JSON object with resourceType is expected")
    document = FhirDocument(
        index=index,
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        line=line,
        resource_type=resource["resourceType"],
        document_id=str(resource.get("id") or ""),
    )
    try:
        if document.resource_type == "Bundle":
            site = _source(resource) or site
            entries = resource.get("entry") or []
            if not isinstance(entries, list):
                raise ValueError("Bundle.entry is not a list")
            for entry_index, entry in enumerate(entries):
                inner = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(inner, dict):
                    document.rows.extend(flatten(inner, document=document, site=site, entry_index=entry_index))
        else:
            document.rows = flatten(resource, document=document, site=site)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:  # a shape we did not expect: a reason, no rows
        document.rows = []
        document.error = f"{document.resource_type} {document.document_id!r} has an unexpected shape: {exc}"
    return document


# -- one resource -------------------------------------------------------------------------------------------------


def _source(resource: dict) -> str:
    meta = resource.get("meta")
    return str(meta.get("source") or "") if isinstance(meta, dict) else ""


def _reference(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("reference") or value.get("display") or "")
    return ""


def _codings(concept: object) -> list[dict]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict) and (c.get("code") or c.get("display"))]


def coded(concept: object, prefix: str) -> Row:
    """A CodeableConcept as ``{prefix}_code/_text/_system`` (first local coding) and ``_alt_*`` (first standard)."""
    codings = _codings(concept)
    local = next((c for c in codings if is_local(c.get("system"))), None)
    standard = next((c for c in codings if not is_local(c.get("system"))), None)
    primary = local or standard or {}
    alternate = standard if local is not None and standard is not None else {}
    text = concept.get("text") if isinstance(concept, dict) else None
    return {
        f"{prefix}_code": str(primary.get("code") or ""),
        f"{prefix}_text": str(primary.get("display") or text or ""),
        f"{prefix}_system": str(primary.get("system") or ""),
        f"{prefix}_alt_code": str(alternate.get("code") or ""),
        f"{prefix}_alt_text": str(alternate.get("display") or ""),
        f"{prefix}_alt_system": str(alternate.get("system") or ""),
    }


def _first_code(concept: object) -> str:
    codings = _codings(concept)
    return str(codings[0].get("code") or "") if codings else ""


def _first_concept(value: object) -> object:
    return value[0] if isinstance(value, list) and value else value


def _value(resource: dict) -> Row:
    """value[x] as value, value_type (the FHIR type) and unit."""
    for key, item in resource.items():
        if not key.startswith("value") or key == "value":
            continue
        kind = key[5:]
        if kind in ("Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity") and isinstance(item, dict):
            value = item.get("value")
            return {
                "value": "" if value is None else f"{item.get('comparator', '')}{value}",
                "value_type": kind,
                "unit_code": str(item.get("code") or item.get("unit") or ""),
                "unit_text": str(item.get("unit") or ""),
                "unit_system": str(item.get("system") or ""),
            }
        if kind == "CodeableConcept":
            codings = _codings(item)
            shown = codings[0].get("code") if codings else (item or {}).get("text")
            return {"value": str(shown or ""), "value_type": kind, "unit_code": "", "unit_text": "", "unit_system": ""}
        return {"value": str(item), "value_type": kind, "unit_code": "", "unit_text": "", "unit_system": ""}
    return {"value": "", "value_type": "", "unit_code": "", "unit_text": "", "unit_system": ""}


def _range(resource: dict) -> str:
    ranges = resource.get("referenceRange") or []
    first = ranges[0] if isinstance(ranges, list) and ranges and isinstance(ranges[0], dict) else {}
    if first.get("text"):
        return str(first["text"])
    low, high = (first.get("low") or {}).get("value"), (first.get("high") or {}).get("value")
    if low is None and high is None:
        return ""
    return f"{'' if low is None else low}-{'' if high is None else high}"


def _period_start(resource: dict, *names: str) -> str:
    for name in names:
        value = resource.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("start"):
            return str(value["start"])
    return ""


def flatten(
    resource: dict, *, document: FhirDocument | None = None, site: str = "", entry_index: int | None = None
) -> list[Row]:
    """Rows for one resource (one row, or none for a type not read); Bundles go through ``read_documents``."""
    kind = RESOURCE_KINDS.get(resource.get("resourceType", ""))
    if kind is None:
        return []
    resource_type = resource["resourceType"]
    row: Row = {
        "message_control_id": (document.document_id if document else "") or str(resource.get("id") or ""),
        "message_sha256": document.sha256 if document else "",
        "message_index": document.index if document else 0,
        "message_type": f"{document.resource_type}" if document else resource_type,
        "site": _source(resource) or site or _reference(_first_concept(resource.get("performer"))),
        "resource_type": resource_type,
        "resource_id": str(resource.get("id") or ""),
        "entry_index": entry_index,
        "patient_id": _reference(resource.get("subject") or resource.get("patient")),
        "visit_number": _reference(resource.get("encounter") or resource.get("context")),
        "status": str(resource.get("status") or ""),
        "row_kind": kind,
    }
    if resource_type == "Observation":
        row.update(coded(resource.get("code"), "observation"))
        row.update(_value(resource))
        row.update(
            reference_range=_range(resource),
            abnormal_flag=_first_code(_first_concept(resource.get("interpretation"))),
            result_status=row["status"],
            observation_datetime=_period_start(resource, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
            or str(resource.get("issued") or ""),
            specimen_type=_reference(resource.get("specimen")),
            category=_first_code(_first_concept(resource.get("category"))),
        )
    elif resource_type == "Condition":
        row.update(coded(resource.get("code"), "diagnosis"))
        row.update(
            diagnosis_datetime=_period_start(resource, "onsetDateTime", "onsetPeriod", "recordedDate"),
            diagnosis_type=_first_code(_first_concept(resource.get("category"))),
            clinical_status=_first_code(resource.get("clinicalStatus")),
        )
    elif resource_type == "Procedure":
        row.update(coded(resource.get("code"), "procedure"))
        row["procedure_datetime"] = _period_start(
            resource, "performedDateTime", "performedPeriod", "occurrenceDateTime"
        )
    elif resource_type in ("MedicationRequest", "MedicationStatement"):
        # R4: medicationCodeableConcept; R5: medication.concept
        concept = resource.get("medicationCodeableConcept") or (resource.get("medication") or {}).get("concept")
        row.update(coded(concept, "medication"))
        dosage = _first_concept(resource.get("dosageInstruction") or resource.get("dosage")) or {}
        row.update(
            medication_datetime=_period_start(resource, "authoredOn", "effectiveDateTime", "effectivePeriod"),
            dosage_text=str(dosage.get("text") or "") if isinstance(dosage, dict) else "",
        )
    else:  # Immunization
        row.update(coded(resource.get("vaccineCode"), "vaccine"))
        dose = resource.get("doseQuantity") or {}
        row.update(
            administered_start=_period_start(resource, "occurrenceDateTime", "occurrenceString"),
            administered_amount="" if dose.get("value") is None else str(dose.get("value")),
            administered_unit=str(dose.get("code") or dose.get("unit") or ""),
            lot_number=str(resource.get("lotNumber") or ""),
            completion_status=row["status"],
            route=_first_code(resource.get("route")),
            body_site=_first_code(resource.get("site")),
        )
    return [row]
