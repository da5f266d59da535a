"""RxNorm from the release's `rrf/RXNCONSO.RRF` (pipe-delimited, no header, 18 fields + final '|').

Only RxNorm's own English atoms (SAB=RXNORM) are kept: the same file carries the names of every
source vocabulary (DrugBank, MMSL, VANDF...), which are not RxNorm concepts' names.

Display: the STR of the concept's normalized term type (SCD, SBD, IN...), the canonical RxNorm
name that RxNav and OMOP's RxNorm concept_name also use. The prescribable name (PSN) and the
Tall Man synonym (TMSY) are synonyms: they exist for prescribable drugs only and write
"amLODIPine", which normalization turns back into the normalized name anyway.
Relationships (RXNREL) are not read, so concepts carry no parents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from models.loaders._common import distinct, text_lines
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "rxnorm"
FIELDS = 18
RXCUI, LAT, SAB, TTY, STR, SUPPRESS = 0, 1, 11, 12, 14, 16

# Normalized term types first, then the names that only restate them.
DISPLAY_PRIORITY = (
    "SCD",
    "SBD",
    "GPCK",
    "BPCK",
    "IN",
    "PIN",
    "MIN",
    "BN",
    "SCDF",
    "SBDF",
    "SCDG",
    "SBDG",
    "SCDFP",
    "SBDFP",
    "SCDGP",
    "SCDC",
    "SBDC",
    "DF",
    "DFG",
    "PSN",
    "SY",
    "TMSY",
    "ET",
)
RANK = {tty: rank for rank, tty in enumerate(DISPLAY_PRIORITY)}

# O: obsolete, Y: suppressed by RxNorm, E: suppressed by an editor. N is the only live value.
SUPPRESSED = frozenset({"O", "Y", "E"})


@dataclass(frozen=True, slots=True)
class Atom:
    tty: str
    name: str
    suppressed: bool


@without_gc
def load(path: Path, name: str = "rxnorm") -> Terminology:
    """Load RXNCONSO.RRF, or an RxNorm release folder holding it (directly or under rrf/)."""
    rrf = _locate(Path(path))
    atoms = _read_atoms(rrf)
    concepts = [_concept(rxcui, group) for rxcui, group in atoms.items()]
    return Terminology(name, FORMAT, _version(rrf), concepts)


def _locate(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in (path / "RXNCONSO.RRF", path / "rrf" / "RXNCONSO.RRF"):
        if candidate.is_file():
            return candidate
    raise TerminologyFormatError(path, None, "no RXNCONSO.RRF here or under rrf/")


def _read_atoms(path: Path) -> dict[str, list[Atom]]:
    """RXCUI -> its English RXNORM atoms, in file order.

    RRF never quotes, so counting and splitting on '|' is exact. Every line's field count is
    checked, but only lines naming RXNORM are split: two thirds of the file are other sources.
    """
    atoms: dict[str, list[Atom]] = {}
    number = 0
    for number, line in enumerate(text_lines(path), 1):
        if line.count("|") != FIELDS:  # every field, the last included, ends with '|'
            if line.strip():
                _wrong_field_count(path, number, line)
            continue
        if "|RXNORM|" not in line:
            continue
        fields = line.split("|")
        if fields[SAB] != "RXNORM" or fields[LAT] != "ENG":
            continue
        if not fields[RXCUI]:
            raise TerminologyFormatError(path, number, "empty RXCUI")
        atom = Atom(fields[TTY], fields[STR].strip(), fields[SUPPRESS] in SUPPRESSED)
        atoms.setdefault(fields[RXCUI], []).append(atom)
    if number == 0:
        raise TerminologyFormatError(path, 1, "empty file: expected RXNCONSO rows")
    if not atoms:
        raise TerminologyFormatError(path, None, "no English rows with SAB=RXNORM")
    return atoms


def _wrong_field_count(path: Path, number: int, line: str) -> None:
    line = line.rstrip("\r\n")
    found = line.count("|") + (not line.endswith("|"))  # a truncated last field has no '|'
    problem = f"expected {FIELDS} fields separated by '|' (RXNCONSO.RRF), found {found}"
    if found == FIELDS:
        problem = f"expected every field, the last of {FIELDS} too, to end with '|' (RXNCONSO.RRF)"
    raise TerminologyFormatError(path, number, problem)


def _concept(rxcui: str, atoms: list[Atom]) -> Concept:
    live = [atom for atom in atoms if not atom.suppressed]
    # A concept whose atoms are all suppressed is retired: keep its name so old data still maps.
    candidates = live or atoms
    best = min(candidates, key=lambda atom: RANK.get(atom.tty, len(RANK)))
    return Concept(
        code=rxcui,
        display=best.name,
        synonyms=distinct((atom.name for atom in live), besides=best.name),
        attributes={
            "tty": best.tty,
            "term_types": sorted({atom.tty for atom in candidates}),
        },
        active=bool(live),
    )


def _version(path: Path) -> str:
    """The release date from the release folder's name (RxNorm_full_01062025 -> 2025-01-06)."""
    match = re.search(r"RxNorm_\w*?(\d{2})(\d{2})(\d{4})", str(path.resolve()), re.IGNORECASE)
    if not match:
        return "unknown"
    month, day, year = match.groups()
    return f"{year}-{month}-{day}"
