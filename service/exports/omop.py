"""OMOP CDM 5.4 SOURCE_TO_CONCEPT_MAP rows for a release.

Every approved target carries its OMOP concept id (resolved before writing, `service.exports.targets`);
a code released as unmappable maps to concept 0 of vocabulary 'None', OMOP's "No matching concept".
"""

from __future__ import annotations

import csv
import io

from service.exports.bundle import ReleaseBundle
from service.exports.cells import spreadsheet_cell
from service.exports.systems import source_vocabulary
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
NO_MATCH = (0, "None")  # OMOP concept 0 belongs to vocabulary 'None'


def source_to_concept_map_csv(bundle: ReleaseBundle) -> str:
    project = bundle.project
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in bundle.entries:
        if entry.status == Status.unmappable:
            concept_id, vocabulary = NO_MATCH
        else:
            concept = bundle.omop_concept(entry.target_code)
            concept_id, vocabulary = concept.concept_id, concept.vocabulary_id
        writer.writerow(
            [
                spreadsheet_cell(entry.source_code, 50),
                0,
                source_vocabulary(project),
                spreadsheet_cell(entry.source_text, 255),
                concept_id,
                spreadsheet_cell(vocabulary, 20),
                bundle.release.created_at[:10],
                "2099-12-31",
                "",
            ]
        )
    return out.getvalue()
