"""A release as a Usagi mapping file, so OHDSI tooling can pick the reviewed mappings up; conceptId is
the target's OMOP concept id, resolved before writing (`service.exports.targets`)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from service.exports.bundle import ReleaseBundle
from service.exports.cells import spreadsheet_cell
from service.store.tables import EntryBase, Status

COLUMNS = [
    "sourceCode",
    "sourceName",
    "sourceFrequency",
    "sourceAutoAssignedConceptIds",
    "matchScore",
    "mappingStatus",
    "equivalence",
    "statusSetBy",
    "statusSetOn",
    "conceptId",
    "conceptName",
    "domainId",
    "mappingType",
    "comment",
    "createdBy",
    "createdOn",
    "assignedReviewer",
]
USAGI_EQUIVALENCE = {
    "equivalent": "EQUAL",
    "source-is-narrower-than-target": "WIDER",
    "source-is-broader-than-target": "NARROWER",
    "related-to": "INEXACT",
    "not-related-to": "UNMATCHED",
}


def usagi_csv(bundle: ReleaseBundle) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in bundle.entries:
        writer.writerow({k: spreadsheet_cell(v) for k, v in _row(bundle, entry).items()})
    return out.getvalue()


def _row(bundle: ReleaseBundle, entry: EntryBase) -> dict[str, object]:
    """Usagi's way of saying "no concept": conceptId 0, "Unmapped", equivalence UNMATCHED."""
    unmappable = entry.status == Status.unmappable
    concept = None if unmappable else bundle.omop_concept(entry.target_code)
    millis = _epoch_millis(entry.decided_at)
    return {
        "sourceCode": entry.source_code,
        "sourceName": entry.source_text,
        "sourceFrequency": entry.frequency if entry.frequency is not None else -1,
        "sourceAutoAssignedConceptIds": "",
        "matchScore": 0,
        "mappingStatus": "APPROVED",
        "equivalence": "UNMATCHED" if unmappable else USAGI_EQUIVALENCE[entry.relationship or "equivalent"],
        "statusSetBy": entry.confirmed_by or entry.decided_by or "",
        "statusSetOn": millis,
        "conceptId": concept.concept_id if concept else 0,
        "conceptName": "Unmapped" if unmappable else entry.target_display or "",
        "domainId": concept.domain_id if concept else "",
        "mappingType": "MAPS_TO",
        "comment": entry.comment or "",
        "createdBy": entry.decided_by or "",
        "createdOn": millis,
        "assignedReviewer": entry.confirmed_by or "",
    }


def _epoch_millis(timestamp: str | None) -> int:
    if not timestamp:
        return 0
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
