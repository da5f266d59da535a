"""LOINC from the release's LOINC table, `LoincTable/Loinc.csv` (comma-separated, quoted, header).

The display is LONG_COMMON_NAME, the name LOINC recommends showing people; the short name,
display name, consumer name and related names are synonyms because source systems use all of them.
Hierarchies live in separate files (MultiAxialHierarchy), so concepts carry no parents here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from models.loaders._common import Table, distinct
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "loinc"

# DISCOURAGED and DEPRECATED terms stay loadable (old data uses them) but are no mapping target.
ACTIVE_STATUSES = frozenset({"ACTIVE", "TRIAL"})

# RELATEDNAMES2 mixes names of the analyte ("Glu", "HbA1c", "Blood urea nitrogen") with words for
# the other axes ("Point in time", "QNT", "Serum"). An axis word is shared by a large share of the
# table and says nothing about which term is meant, so names shared by more than GENERIC_SHARE of
# the terms (and by more than GENERIC_MIN terms, for small tables) are left out; at most
# MAX_RELATED_NAMES of the rest are kept.
GENERIC_SHARE = 0.02
GENERIC_MIN = 10
MAX_RELATED_NAMES = 30

CLASS_TYPES = {"1": "laboratory", "2": "clinical", "3": "claims attachment", "4": "survey"}

# attribute -> LOINC column; the six axes first, in fully specified name order.
AXES = {
    "component": "COMPONENT",
    "property": "PROPERTY",
    "time": "TIME_ASPCT",
    "system": "SYSTEM",
    "scale": "SCALE_TYP",
    "method": "METHOD_TYP",
}
COLUMNS = (
    *AXES.values(),
    "LOINC_NUM",
    "CLASS",
    "CLASSTYPE",
    "STATUS",
    "LONG_COMMON_NAME",
    "SHORTNAME",
    "DisplayName",
    "CONSUMER_NAME",
    "RELATEDNAMES2",
    "EXAMPLE_UCUM_UNITS",
    "EXAMPLE_UNITS",
    "VersionLastChanged",
)


@without_gc
def load(path: Path, name: str = "loinc") -> Terminology:
    """Load `Loinc.csv`, or a LOINC release folder holding it (directly or under LoincTable/)."""
    csv_path = _locate(Path(path))
    table = Table(csv_path, required=["LOINC_NUM"], delimiter=",", quoted=True)
    if table.index("COMPONENT") is None and table.index("LONG_COMMON_NAME") is None:
        raise TerminologyFormatError(csv_path, 1, "missing required column COMPONENT or LONG_COMMON_NAME")
    positions = {c: i for c in COLUMNS if (i := table.index(c)) is not None}
    concepts: list[Concept] = []
    related: list[list[str]] = []
    seen: set[str] = set()
    changed_in: set[str] = set()
    shared: dict[str, str] = {}  # one string object per distinct related name keeps memory flat
    for line, fields in table.rows():
        row = {column: fields[i].strip() for column, i in positions.items()}
        concept = _concept(row, csv_path, line)
        if concept.code in seen:
            raise TerminologyFormatError(csv_path, line, f"duplicate LOINC_NUM {concept.code}")
        seen.add(concept.code)
        concepts.append(concept)
        names = (name.strip() for name in row.get("RELATEDNAMES2", "").split(";"))
        related.append([shared.setdefault(name, name) for name in names if name])
        changed_in.add(row.get("VersionLastChanged", ""))
    _add_related_names(concepts, related)
    return Terminology(name, FORMAT, _version(csv_path, changed_in), concepts)


def _locate(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in (path / "Loinc.csv", path / "LoincTable" / "Loinc.csv"):
        if candidate.is_file():
            return candidate
    raise TerminologyFormatError(path, None, "no Loinc.csv here or under LoincTable/")


def _concept(row: dict[str, str], path: Path, line: int) -> Concept:
    code = row["LOINC_NUM"]
    if not code:
        raise TerminologyFormatError(path, line, "empty LOINC_NUM")
    display = row.get("LONG_COMMON_NAME") or _fully_specified_name(row)
    named = [row.get(c, "") for c in ("SHORTNAME", "DisplayName", "CONSUMER_NAME")]
    status = row.get("STATUS", "").upper()
    return Concept(
        code=code,
        display=display,
        synonyms=distinct(named, besides=display),
        attributes=_attributes(row, status),
        # Very old tables leave STATUS empty; they predate deprecation, so empty means active.
        active=not status or status in ACTIVE_STATUSES,
    )


def _add_related_names(concepts: list[Concept], related: list[list[str]]) -> None:
    counts = Counter(name for names in related for name in names)
    most = max(GENERIC_MIN, GENERIC_SHARE * len(concepts))
    for concept, names in zip(concepts, related):
        specific = [name for name in names if counts[name] <= most]
        concept.synonyms = distinct(concept.synonyms + specific[:MAX_RELATED_NAMES], besides=concept.display)


def _fully_specified_name(row: dict[str, str]) -> str:
    """COMPONENT:PROPERTY:TIME:SYSTEM:SCALE[:METHOD], as LOINC writes its fully specified name."""
    parts = [row.get(column, "") for column in AXES.values()]
    if not parts[-1]:
        parts.pop()  # method is the only optional axis
    return ":".join(parts)


def _attributes(row: dict[str, str], status: str) -> dict[str, str | None]:
    attributes: dict[str, str | None] = {key: row.get(col) or None for key, col in AXES.items()}
    class_type = row.get("CLASSTYPE", "")
    attributes.update(
        {
            "class": row.get("CLASS") or None,
            "class_type": CLASS_TYPES.get(class_type, class_type or None),
            "units": row.get("EXAMPLE_UCUM_UNITS") or row.get("EXAMPLE_UNITS") or None,
            "status": status or None,
            "panel": is_panel(row),
        }
    )
    return attributes


def is_panel(row: dict[str, str]) -> bool:
    """A panel (an order of several results): its class says so, or its name ("Gas panel - Arterial blood")."""
    named = re.search(r"\bpanel\b", row.get("LONG_COMMON_NAME", ""), re.IGNORECASE)
    return "PANEL" in row.get("CLASS", "").upper() or named is not None


def _version(path: Path, changed_in: set[str]) -> str:
    """The release folder's version (Loinc_2.78/), else the newest VersionLastChanged.

    Every release changes some terms, so the newest VersionLastChanged is the release itself.
    """
    match = re.search(r"loinc[_-]?(\d+\.\d+)", str(path.resolve()), re.IGNORECASE)
    if match:
        return match.group(1)
    numbered = [v for v in changed_in if re.fullmatch(r"\d+(\.\d+)*", v)]
    if not numbered:
        return "unknown"
    return max(numbered, key=lambda v: tuple(int(part) for part in v.split(".")))
