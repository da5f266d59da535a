"""A field-mapping release as an ETL mapping specification: per target table, which source column fills
each target field (what ETL developers read, like Rabbit-in-a-Hat's ETL document). CSV and Markdown.

Targets are `table.column` codes (a project on a target data model); a source column released as
unmappable is listed apart, so the document says what was looked at and left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from service.exports.bundle import ReleaseBundle
from service.store.tables import EntryBase, Status

COLUMNS = [
    "target_table",
    "target_column",
    "source_table",
    "source_column",
    "source_description",
    "relationship",
    "comment",
    "target_description",
    "decided_by",
    "confirmed_by",
]


def mapping_spec_csv(bundle: ReleaseBundle) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(e) for e in _mapped(bundle.entries))
    writer.writerows(_row(e) for e in _unmapped(bundle.entries))
    return out.getvalue()


def mapping_spec_markdown(bundle: ReleaseBundle) -> str:
    project, release = bundle.project, bundle.release
    lines = [
        f"# Mapping specification: {project.source_system} -> {project.target_terminology}",
        "",
        f"Project {project.name}, release {release.number} ({release.created_at[:10]}).",
    ]
    mapped = _mapped(bundle.entries)
    for table in dict.fromkeys(_split(e.target_code)[0] for e in mapped):
        lines += ["", f"## {table}", "", "| Target field | Source | Source description | Relationship | Comment |"]
        lines.append("|---|---|---|---|---|")
        for e in (e for e in mapped if _split(e.target_code)[0] == table):
            lines.append(
                "| "
                + " | ".join(
                    _cell(v)
                    for v in (_split(e.target_code)[1], e.source_code, e.source_text, e.relationship, e.comment)
                )
                + " |"
            )
    unmapped = _unmapped(bundle.entries)
    if unmapped:
        lines += ["", "## Source columns not mapped", "", "| Source | Source description | Comment |", "|---|---|---|"]
        lines += [f"| {_cell(e.source_code)} | {_cell(e.source_text)} | {_cell(e.comment)} |" for e in unmapped]
    return "\n".join(lines) + "\n"


def _mapped(entries: Iterable[EntryBase]) -> list[EntryBase]:
    kept = [e for e in entries if e.status != Status.unmappable and e.target_code]
    return sorted(kept, key=lambda e: (*_split(e.target_code), e.source_code))


def _unmapped(entries: Iterable[EntryBase]) -> list[EntryBase]:
    return sorted((e for e in entries if e.status == Status.unmappable), key=lambda e: e.source_code)


def _row(entry: EntryBase) -> list[str]:
    target_table, target_column = _split(entry.target_code) if entry.target_code else ("", "")
    source_table, source_column = _split(entry.source_code)
    display = entry.target_display or ""
    description = display.partition(": ")[2] if display.startswith(f"{entry.target_code}: ") else display
    return [
        target_table,
        target_column,
        source_table,
        source_column,
        entry.source_text,
        entry.relationship or "",
        entry.comment or "",
        description,
        entry.decided_by or "",
        entry.confirmed_by or "",
    ]


def _split(code: str) -> tuple[str, str]:
    """`table.column` -> (table, column); a code without a table keeps its whole self as the column."""
    table, _, column = code.rpartition(".")
    return table, column


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(str(value or "").split()).replace("|", "\\|")
