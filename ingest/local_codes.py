"""The local codes a sender used, counted and described, ready to become review items.

Rows from ``ingest.hl7v2.flatten`` or ``ingest.fhir.flatten`` name each coded field by a column
prefix: ``{prefix}_code``, ``_text``, ``_system`` and the alternate ``_alt_code/_alt_text/_alt_system``
(HL7 v2 components 4-6; in FHIR another coding of the same concept). A code is local when its
system is not a standard one (``ingest.coding``). A local code whose alternate is already LOINC,
SNOMED CT, ICD... was mapped by the sender: it is left out, or kept with ``already_coded`` set.

    codes = collect_local_codes(rows)                  # OBX-3 of results, OBR-4 of orders, DG1-3...
    codes = collect_local_codes(rows, field="OBR-4")   # one field only
    items = [code.review_item() for code in codes]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ingest.coding import MAPPING_TARGETS, is_local, standard_system

#: field name (HL7 v2 or FHIR) -> the column prefix its code/text/system take in rows
FIELD_PREFIXES = {
    "OBX-3": "observation",
    "OBR-4": "order",
    "DG1-3": "diagnosis",
    "RXA-5": "vaccine",
    "OBX-6": "unit",
    "Observation.code": "observation",
    "Condition.code": "diagnosis",
    "Procedure.code": "procedure",
    "MedicationRequest.medication": "medication",
    "MedicationStatement.medication": "medication",
    "Immunization.vaccineCode": "vaccine",
}
#: the field collected from each kind of row when none is chosen
DEFAULT_PREFIX_BY_KIND = {
    "result": "observation",
    "order": "order",
    "diagnosis": "diagnosis",
    "admission": None,  # its first diagnosis is also a diagnosis row: counted there, once
    "immunization": "vaccine",
    "procedure": "procedure",
    "medication": "medication",
}
_FIELD_BY_PREFIX = {"observation": "OBX-3", "order": "OBR-4", "diagnosis": "DG1-3", "vaccine": "RXA-5", "unit": "OBX-6"}
_FHIR_FIELDS = {
    "Observation": "Observation.code",
    "Condition": "Condition.code",
    "Procedure": "Procedure.code",
    "MedicationRequest": "MedicationRequest.medication",
    "MedicationStatement": "MedicationStatement.medication",
    "Immunization": "Immunization.vaccineCode",
}
_CONTEXT_COLUMNS = {  # context key -> row column, counted per code
    "units": "unit_code",
    "value_types": "value_type",
    "specimen_types": "specimen_type",
    "reference_ranges": "reference_range",
    "abnormal_flags": "abnormal_flag",
    "result_statuses": "result_status",
    "orders": "order_text",
    "diagnosis_types": "diagnosis_type",
    "routes": "route",
}


@dataclass
class LocalCode:
    """One local code of one sender (site + coding system + code), with what was seen alongside it."""

    code: str
    text: str  # the text sent most often with it
    system: str  # as the sender wrote it ("L", "99LAB", "" ...)
    field: str  # "OBX-3", "Observation.code"...
    site: str
    frequency: int = 0
    already_coded: str | None = None  # the standard the sender also gave ("LOINC"), None when it did not
    standard_code: str | None = None
    texts: Counter = field(default_factory=Counter)
    context: dict[str, Counter] = field(default_factory=dict)
    example_values: list[str] = field(default_factory=list)
    numeric_min: float | None = None
    numeric_max: float | None = None
    message_ids: list[str] = field(default_factory=list)  # control ids (or resource ids) that carried it
    message_sha256s: list[str] = field(default_factory=list)  # the stored messages behind them
    first_seen: str = ""
    last_seen: str = ""

    def review_item(self) -> dict:
        """A plain record for a review queue: code, text, frequency, context and provenance."""
        context: dict = {key: dict(counter.most_common(10)) for key, counter in self.context.items() if counter}
        if len(self.texts) > 1:
            context["texts"] = dict(self.texts.most_common(10))
        if self.example_values:
            context["example_values"] = list(self.example_values)
        if self.numeric_min is not None:
            context["numeric_range"] = [self.numeric_min, self.numeric_max]
        context.update(field=self.field, site=self.site, coding_system=self.system)
        if self.already_coded:
            context["already_coded"] = {"system": self.already_coded, "code": self.standard_code}
        if self.first_seen:
            context["seen"] = [self.first_seen, self.last_seen]
        return {
            "code": self.code,
            "text": self.text,
            "frequency": self.frequency,
            "context": context,
            "provenance": {"message_ids": list(self.message_ids), "message_sha256": list(self.message_sha256s)},
        }


def _prefix_for(row: Mapping, field_name: str | None) -> str | None:
    if field_name is None:
        return DEFAULT_PREFIX_BY_KIND.get(str(row.get("row_kind")), None)
    return FIELD_PREFIXES.get(field_name, field_name)  # a bare prefix ("observation") works too


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def collect_local_codes(
    rows: Iterable[Mapping],
    field: str | None = None,
    *,
    include_coded: bool = False,
    max_examples: int = 5,
    max_messages: int = 50,
) -> list[LocalCode]:
    """Local codes of ``field`` (default: OBX-3 for results, OBR-4 for orders, DG1-3 for diagnoses...).

    Codes in a standard system are never local. A local code that the sender also gave in LOINC,
    SNOMED CT, ICD, RxNorm, CPT or CVX is left out unless ``include_coded``. The result is sorted by
    frequency, most frequent first. Each code keeps at most ``max_messages`` message ids as evidence.
    """
    codes: dict[tuple[str, str, str, str], LocalCode] = {}
    for row in rows:
        prefix = _prefix_for(row, field)
        if prefix is None:
            continue
        code = str(row.get(f"{prefix}_code") or "").strip()
        text = str(row.get(f"{prefix}_text") or "").strip()
        system = str(row.get(f"{prefix}_system") or "").strip()
        if not (code or text) or not is_local(system):
            continue
        alt_standard = standard_system(str(row.get(f"{prefix}_alt_system") or ""))
        already = alt_standard if alt_standard in MAPPING_TARGETS and row.get(f"{prefix}_alt_code") else None
        if already and not include_coded:
            continue
        site = str(row.get("site") or "")
        key = (site, system.upper(), code or text.lower(), prefix)
        entry = codes.get(key)
        if entry is None:
            field_name = field if field in FIELD_PREFIXES else _FIELD_BY_PREFIX.get(prefix, prefix)
            if row.get("resource_type") in _FHIR_FIELDS and field not in FIELD_PREFIXES:
                field_name = _FHIR_FIELDS[str(row["resource_type"])]
            entry = codes[key] = LocalCode(code=code, text=text, system=system, field=field_name, site=site)
        _observe(entry, row, text, already, prefix, max_examples, max_messages)
    for entry in codes.values():
        entry.text = entry.texts.most_common(1)[0][0] if entry.texts else entry.text
    return sorted(codes.values(), key=lambda c: (-c.frequency, c.site, c.system, c.code))


def _observe(
    entry: LocalCode, row: Mapping, text: str, already: str | None, prefix: str, max_examples: int, max_messages: int
) -> None:
    entry.frequency += 1
    if text:
        entry.texts[text] += 1
    if already:
        entry.already_coded, entry.standard_code = already, str(row.get(f"{prefix}_alt_code"))
    for key, column in _CONTEXT_COLUMNS.items():
        value = row.get(column)
        if value not in (None, "") and not (key == "orders" and prefix == "order"):
            entry.context.setdefault(key, Counter())[str(value)] += 1
    value = row.get("value")
    if value not in (None, ""):
        value = str(value)
        if len(entry.example_values) < max_examples and value not in entry.example_values:
            entry.example_values.append(value)
        number = _number(value)
        if number is not None:
            entry.numeric_min = number if entry.numeric_min is None else min(entry.numeric_min, number)
            entry.numeric_max = number if entry.numeric_max is None else max(entry.numeric_max, number)
    # one message per stored copy: control ids are only unique per sender, and some senders reuse them
    digest = str(row.get("message_sha256") or "")
    if len(entry.message_sha256s) < max_messages and digest not in entry.message_sha256s:
        entry.message_ids.append(str(row.get("message_control_id") or ""))
        entry.message_sha256s.append(digest)
    seen = str(row.get("observation_datetime") or row.get("message_datetime") or "")
    if seen:
        entry.first_seen = min(entry.first_seen or seen, seen)
        entry.last_seen = max(entry.last_seen, seen)
