"""Source-code files in and suggestion files out (CSV), with errors that say what to fix."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from models.items import SourceItem, Suggestion

REQUIRED_COLUMNS = ("source_code", "source_text")
OUTPUT_COLUMNS = ["source_code", "rank", "target_code", "target_display", "score"]
EVIDENCE_COLUMNS = ["lexical", "semantic", "matched_text"]


class SourceFileError(ValueError):
    """A source file crosswalk cannot read; the message names the file, the line and the fix."""


def read_source_items(path: Path, encoding: str | None = None) -> list[SourceItem]:
    text = _read_text(Path(path), encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise SourceFileError(
            f"{path}: the file is empty; expected a header with {', '.join(REQUIRED_COLUMNS)}"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SourceFileError(f"{path}: missing column(s) {', '.join(missing)}; found: {', '.join(header) or '(none)'}")
    items = list(_items(path, reader, header))
    if not items:
        raise SourceFileError(f"{path}: a header but no rows")
    return items


def _read_text(path: Path, encoding: str | None) -> str:
    if not path.is_file():
        raise SourceFileError(f"{path}: no such file")
    return decode(path.read_bytes(), str(path), encoding)


# Byte-order marks say the encoding whatever the user passed: Excel's "Unicode Text" is UTF-16 with one.
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes, name: str, encoding: str | None = None) -> str:
    """A source list's text: the encoding its byte-order mark says, else `encoding` (default UTF-8);
    every source list (CLI and API, suggest and project imports) is read through here."""
    codec = next((bom_codec for bom, bom_codec in BOMS if data.startswith(bom)), None)
    if codec is None:
        wanted = (encoding or "utf-8").lower().replace("_", "-")
        codec = "utf-8-sig" if wanted in ("utf-8", "utf8") else wanted
    try:
        return data.decode(codec)
    except LookupError:
        raise SourceFileError(f"unknown encoding {encoding!r}; e.g. utf-8, cp1252, latin-1, utf-16") from None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourceFileError(
            f"{name}, line {line}: not valid {encoding or 'UTF-8'} text (byte 0x{data[error.start]:02x}); "
            "if it was saved by Excel on Windows, give the encoding cp1252"
        ) from None


def _items(path: Path, reader, header: list[str]):
    code_at, text_at = header.index("source_code"), header.index("source_text")
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines carry nothing
            if len(row) != len(header):
                raise SourceFileError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
            code, text = row[code_at].strip(), row[text_at].strip()
            if not code or not text:
                empty = "source_code" if not code else "source_text"
                raise SourceFileError(f"{path}, line {line}: {empty} is empty")
            context = {
                column: value.strip()
                for column, value in zip(header, row)
                if column not in REQUIRED_COLUMNS and value.strip()
            }
            yield SourceItem(code=code, text=text, context=context)
    except csv.Error as error:
        raise SourceFileError(f"{path}, line {reader.line_num}: {error}") from None


def write_suggestions(
    path: Path, items: Sequence[SourceItem], results: Sequence[Sequence[Suggestion]], evidence: bool = False
) -> None:
    """Write one row per candidate; written beside and renamed, so a failure leaves no half file."""
    path = Path(path)
    if not path.parent.exists():
        raise SourceFileError(f"{path}: the folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(OUTPUT_COLUMNS + (EVIDENCE_COLUMNS if evidence else []))
        for item, suggestions in zip(items, results):
            for s in suggestions:
                row = [item.code, s.rank, s.code, s.display, f"{s.score:.4f}"]
                if evidence:
                    row += [s.evidence["lexical"], s.evidence["semantic"], s.evidence["matched_text"]]
                writer.writerow(row)
    tmp.replace(path)
