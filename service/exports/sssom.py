"""A release as an SSSOM mapping set (TSV with its YAML metadata block), manual curation throughout."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote

from service.exports.bundle import ReleaseBundle
from service.exports.cells import spreadsheet_row
from service.exports.systems import conceptmap_url
from service.store.tables import EntryBase, Project, Status

# FHIR relationship -> (SKOS predicate, predicate_modifier). "source narrower than target" is
# skos:broadMatch: the object is broader than the subject.
PREDICATES = {
    "equivalent": ("skos:exactMatch", ""),
    "source-is-narrower-than-target": ("skos:broadMatch", ""),
    "source-is-broader-than-target": ("skos:narrowMatch", ""),
    "related-to": ("skos:relatedMatch", ""),
    "not-related-to": ("skos:relatedMatch", "Not"),
}
COLUMNS = [
    "subject_id",
    "subject_label",
    "predicate_id",
    "predicate_modifier",
    "object_id",
    "object_label",
    "mapping_justification",
    "author_label",
    "reviewer_label",
    "mapping_date",
    "comment",
]
SOURCE_PREFIX = "SRC"


def sssom_tsv(bundle: ReleaseBundle) -> str:
    """Unmappable codes are left out: SSSOM states mappings, and they have none."""
    release = bundle.release
    object_prefix, object_base = bundle.target_system.prefix, bundle.target_system.prefix_uri
    out = io.StringIO()
    out.write(_metadata(bundle, object_prefix, object_base))
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in bundle.entries:
        if entry.status != Status.unmappable and entry.target_code:
            writer.writerow(spreadsheet_row(_row(entry, object_prefix, release.created_at[:10])))
    return out.getvalue()


def _metadata(bundle: ReleaseBundle, object_prefix: str, object_base: str) -> str:
    """The YAML block, every value JSON-quoted (a valid YAML scalar, whatever the URI or name holds)."""
    project, release = bundle.project, bundle.release
    prefixes = {
        SOURCE_PREFIX: _base(project),
        object_prefix: object_base,
        "skos": "http://www.w3.org/2004/02/skos/core#",
        "semapv": "https://w3id.org/semapv/vocab/",
    }
    fields = {
        "mapping_set_id": f"{conceptmap_url(project)}/release/{release.number}",
        "mapping_set_version": str(release.number),
        "mapping_set_title": project.name,
        "license": "https://w3id.org/sssom/license/unspecified",
        "mapping_tool": "crosswalk",
    }
    lines = ["curie_map:", *(f"  {k}: {json.dumps(v)}" for k, v in prefixes.items())]
    lines += [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items()]
    return "".join(f"#{line}\n" for line in lines)


def _base(project: Project) -> str:
    uri = project.source_uri or ""
    return uri if uri.endswith(("/", "#", ":")) else uri + ("/" if uri.startswith("http") else ":")


def _row(entry: EntryBase, object_prefix: str, date: str) -> list[str]:
    predicate, modifier = PREDICATES[entry.relationship or "equivalent"]
    return [
        f"{SOURCE_PREFIX}:{quote(entry.source_code, safe='')}",
        entry.source_text,
        predicate,
        modifier,
        f"{object_prefix}:{quote(entry.target_code or '', safe='')}",
        entry.target_display or "",
        "semapv:ManualMappingCuration",
        entry.decided_by or "",
        entry.confirmed_by or "",
        date,
        entry.comment or "",
    ]
