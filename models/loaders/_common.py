"""Helpers shared by the release-file loaders: text and delimited files read so that every
problem names its physical line, and synonym lists without repeats.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

from models.terminology import TerminologyFormatError


def text_lines(path: Path) -> Iterator[str]:
    """The file's lines with their endings (a UTF-8 BOM is dropped).

    Decoding in text mode keeps the fast path fast; only when a byte is not UTF-8 is the file
    re-read line by line to name the offending line.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as lines:
            yield from lines
    except UnicodeDecodeError as error:
        line = _line_of_bad_byte(path)
        raise TerminologyFormatError(path, line, f"not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise TerminologyFormatError(path, None, f"cannot read file: {error.strerror}") from None


def _line_of_bad_byte(path: Path) -> int | None:
    with path.open("rb") as raw:
        for number, line in enumerate(raw, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def sniff_delimiter(header_line: str) -> str:
    """Athena writes tab-separated files named .csv; other OMOP exports use commas."""
    return "\t" if "\t" in header_line else ","


class Table:
    """A delimited file with a header row: column positions, then rows numbered by physical line.

    `quoted=False` reads fields verbatim (RF2, Athena TSV): those formats never quote, and their
    terms may contain a literal `"` that a CSV dialect would take for a quote; a plain split is
    also twice as fast as the csv module. Column names match case-insensitively, since OMOP
    exports differ in case.
    """

    def __init__(
        self,
        path: Path,
        *,
        required: Iterable[str] = (),
        delimiter: str | None = None,
        quoted: bool | None = None,
    ) -> None:
        self.path = path
        self._lines = text_lines(path)
        first = next(self._lines, None)
        if first is None or not first.strip():
            raise TerminologyFormatError(path, 1, "empty file: expected a header row")
        self.delimiter = delimiter or sniff_delimiter(first)
        self.quoted = self.delimiter != "\t" if quoted is None else quoted
        header = self._header(first)
        self.width = len(header)
        self.columns = {name.strip().casefold(): i for i, name in enumerate(header)}
        missing = [name for name in required if name.casefold() not in self.columns]
        if missing:
            found = ", ".join(name.strip() for name in header)
            problem = f"missing required column {', '.join(missing)} (header has: {found})"
            raise TerminologyFormatError(path, 1, problem)

    def _header(self, first: str) -> list[str]:
        if not self.quoted:
            return first.rstrip("\r\n").split(self.delimiter)
        lines = chain([first], self._lines)
        self._reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
        try:
            return next(self._reader)
        except csv.Error as error:
            raise TerminologyFormatError(self.path, 1, f"malformed header: {error}") from None

    def index(self, name: str) -> int | None:
        return self.columns.get(name.casefold())

    def rows(self, containing: str = "") -> Iterator[tuple[int, list[str]]]:
        """(first physical line, fields) per record; blank lines are skipped.

        `containing` skips, before parsing, lines without that text: a cheap way through the
        rows of a huge file that cannot matter. Only unquoted files use it (a quoted record may
        span lines, so its lines cannot be judged one by one).
        """
        return self._quoted_rows() if self.quoted else self._split_rows(containing)

    def _split_rows(self, containing: str) -> Iterator[tuple[int, list[str]]]:
        width, delimiter = self.width, self.delimiter
        for number, line in enumerate(self._lines, 2):
            if containing not in line:
                continue
            fields = line.rstrip("\r\n").split(delimiter)
            if len(fields) != width:
                if not line.strip():
                    continue
                self._wrong_width(number, len(fields))
            yield number, fields

    def _quoted_rows(self) -> Iterator[tuple[int, list[str]]]:
        reader, width, end = self._reader, self.width, 1
        try:
            for fields in reader:
                start, end = end + 1, reader.line_num
                if len(fields) != width:
                    if not fields:
                        continue
                    self._wrong_width(start, len(fields))
                yield start, fields
        except csv.Error as error:
            # A quoted field left open runs to the end of the file: name the line where it began.
            raise TerminologyFormatError(self.path, end + 1, f"malformed row: {error}") from None

    def _wrong_width(self, line: int, found: int) -> None:
        problem = f"expected {self.width} fields as in the header, found {found}"
        raise TerminologyFormatError(self.path, line, problem)


def distinct(terms: Iterable[str], *, besides: str = "") -> list[str]:
    """Stripped, non-empty terms without case-insensitive repeats or the display (`besides`)."""
    seen = {besides.strip().casefold()}
    out: list[str] = []
    for term in terms:
        term = term.strip()
        key = term.casefold()
        if term and key not in seen:
            seen.add(key)
            out.append(term)
    return out
