"""Cells of spreadsheet-bound exports (CSV, TSV) that a spreadsheet would run as a formula.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@` (and one that
starts with a tab or carriage return after they strip it), so a source text such as `=HYPERLINK(...)`
from a feed would open as a live formula on a reviewer's machine. Such a cell gets a leading `'`, the
usual "this is text" mark (OWASP's advice for CSV injection). A plain number (`-5`, `+1.5e3`) is left as
it is: it cannot be a formula, and negative values are legitimate data. JSON and FHIR exports keep every
value exact; only the CSV and TSV writers call this.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_cell(value: object, max_length: int | None = None) -> object:
    """`value`, with a leading `'` when a spreadsheet would read it as a formula; `max_length` (a column
    limit such as OMOP's varchar(50)) is kept after the mark is added."""
    if not isinstance(value, str):
        return value
    text = value if max_length is None else value[:max_length]
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + (text if max_length is None else text[: max_length - 1])
    return text


def spreadsheet_row(values: list[object]) -> list[object]:
    return [spreadsheet_cell(v) for v in values]
