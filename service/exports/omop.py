"""OMOP CDM SOURCE_TO_CONCEPT_MAP rows for a release (unmappable codes map to concept 0)."""

from __future__ import annotations

import csv
import io

from service.exports import ReleaseBundle
from service.exports.systems import omop_concept_id, omop_vocabulary, source_vocabulary
from service.store.tables import Status

COLUMNS = [
    "source_code",
    "source_concept_id",
    "source_vocabulary_id",
    "source_code_description",
    "target_concept_id",
    "target_vocabulary_id",
    "valid_start_date",
    "valid_end_date",
    "invalid_reason",
]


def source_to_concept_map_csv(bundle: ReleaseBundle) -> str:
    project = bundle.project
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in bundle.entries:
        target = None if entry.status == Status.unmappable else entry.target_code
        writer.writerow(
            [
                entry.source_code,
                0,
                source_vocabulary(project),
                entry.source_text[:255],
                omop_concept_id(project.target_terminology, target),
                omop_vocabulary(project.target_terminology),
                bundle.release.created_at[:10],
                "2099-12-31",
                "",
            ]
        )
    return out.getvalue()
