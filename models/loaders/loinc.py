"""LOINC from the release's LOINC table, `LoincTable/Loinc.csv` (comma-separated, quoted, header).

The display is LONG_COMMON_NAME, the name LOINC recommends showing people; the short name,
display name, consumer name and related names are synonyms because source systems use all of them.
Hierarchies live in separate files (MultiAxialHierarchy), so concepts carry no parents here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from models.loaders._common import Table, distinct
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "loinc"

# DISCOURAGED and DEPRECATED terms stay loadable (old data uses them) but are no mapping target.
ACTIVE_STATUSES = frozenset({"ACTIVE", "TRIAL"})

# RELATEDNAMES2 mixes names of the analyte ("Glu", "HbA1c", "Blood urea nitrogen") with words for
# the other axes ("Point in time", "QNT", "Whole blood", "Titer", "PCR"): LOINC lists every synonym of
# every part. An axis word says nothing about which analyte is meant, yet as a synonym it matched any
# name that mentions the specimen or method. Where the table has parts, a name is an axis word when
# the terms carrying it hold more than one component and share one value of another axis, carried
# by at least AXIS_COVERAGE of that value's terms (LOINC gives a part's synonyms to every term with
# the part). Without parts, names shared by more than GENERIC_SHARE of the terms (and by more than
# GENERIC_MIN, for small tables) are left out. At most MAX_RELATED_NAMES of the rest are kept.
GENERIC_SHARE = 0.02
GENERIC_MIN = 10
AXIS_COVERAGE = 0.8
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
    carriers: dict[str, list[int]] = defaultdict(list)
    for position, names in enumerate(related):
        for name in names:
            carriers[name].append(position)
    most = max(GENERIC_MIN, GENERIC_SHARE * len(concepts))
    carriers = {name: positions for name, positions in carriers.items() if len(positions) <= most}
    axis_words = _axis_words(concepts, carriers)
    for concept, names in zip(concepts, related):
        specific = [name for name in names if name in carriers and name not in axis_words]
        concept.synonyms = distinct(concept.synonyms + specific[:MAX_RELATED_NAMES], besides=concept.display)


def _analyte(concept: Concept) -> str | None:
    """The component without its challenge or timing ("Glucose^2H post 75 g glucose PO" -> "glucose")."""
    component = concept.attributes.get("component")
    return str(component).split("^")[0].casefold() if component else None


# The axes a related name may stand for instead of the analyte (the class too: "Chemistry").
_OTHER_AXES = ("property", "time", "system", "scale", "method", "class")


def _axis_words(concepts: list[Concept], carriers: dict[str, list[int]]) -> set[str]:
    """Related names that follow another axis than the component ("Arterial blood" on every BldA term)."""
    terms_with: Counter[tuple[str, object]] = Counter(
        (axis, concept.attributes.get(axis)) for concept in concepts for axis in _OTHER_AXES
    )
    analytes = [_analyte(concept) for concept in concepts]
    words = set()
    for name, positions in carriers.items():
        components = {analytes[p] for p in positions}
        if len(components) < 2 or None in components:
            continue  # one analyte's names, or a table without parts: nothing to tell them by
        for axis in _OTHER_AXES:
            values = {concepts[p].attributes.get(axis) for p in positions}
            if (
                len(values) == 1
                and (value := values.pop())
                and len(positions) >= AXIS_COVERAGE * terms_with[axis, value]
            ):
                words.add(name)
                break
    return words


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
