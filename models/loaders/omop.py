"""OMOP CDM vocabularies from an Athena download: CONCEPT.csv plus optional siblings.

Athena writes tab-separated files named .csv, unquoted (names may hold a bare '"'); other exports
(Eunomia, database dumps) are comma-separated and quoted. The delimiter is sniffed per file.

Siblings, all optional: CONCEPT_SYNONYM.csv (synonyms), CONCEPT_RELATIONSHIP.csv (valid "Is a"
rows -> parents that are themselves loaded) and VOCABULARY.csv (the 'None' row carries the
Athena release, e.g. "v5.0 30-AUG-24").
The code is concept_id: OMOP's key, unique across vocabularies, unlike concept_code.
"""

from __future__ import annotations

from pathlib import Path

from models.loaders._common import Table, distinct
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "omop"

CONCEPT_COLUMNS = (
    "concept_id",
    "concept_name",
    "domain_id",
    "vocabulary_id",
    "concept_class_id",
    "standard_concept",
    "concept_code",
    "invalid_reason",
)
IS_A = "Is a"
# What an invalid concept became, best first: its upgrade, then where it maps (models/release_diff.py).
SUCCESSOR_RELATIONSHIPS = ("Concept replaced by", "Maps to")


@without_gc
def load(path: Path, name: str = "omop") -> Terminology:
    """Load CONCEPT.csv, or the folder of an Athena download holding it."""
    concept_file = _locate(Path(path))
    folder = concept_file.parent
    concepts = _read_concepts(concept_file)
    if synonyms := _sibling(folder, "CONCEPT_SYNONYM.csv"):
        _add_synonyms(synonyms, concepts)
    if relationships := _sibling(folder, "CONCEPT_RELATIONSHIP.csv"):
        _add_parents(relationships, concepts)
        _add_successors(relationships, concepts)
    vocabularies = _sibling(folder, "VOCABULARY.csv")
    version = _version(vocabularies) if vocabularies else "unknown"
    return Terminology(name, FORMAT, version, list(concepts.values()))


def _locate(path: Path) -> Path:
    if path.is_file():
        return path
    found = _sibling(path, "CONCEPT.csv")
    if found is None:
        raise TerminologyFormatError(path, None, "no CONCEPT.csv in this folder")
    return found


def _sibling(folder: Path, file_name: str) -> Path | None:
    """`file_name` in `folder`, whatever its case (exports write concept.csv or CONCEPT.csv)."""
    wanted = file_name.casefold()
    return next((p for p in folder.iterdir() if p.name.casefold() == wanted and p.is_file()), None)


def _read_concepts(path: Path) -> dict[str, Concept]:
    table = Table(path, required=CONCEPT_COLUMNS)
    at = [table.index(column) for column in CONCEPT_COLUMNS]
    concepts: dict[str, Concept] = {}
    for line, fields in table.rows():
        ident, name, domain, vocabulary, klass, standard, code, invalid = (fields[i] for i in at)
        ident = _concept_id(ident, path, line)
        if ident in concepts:
            raise TerminologyFormatError(path, line, f"duplicate concept_id {ident}")
        concepts[ident] = Concept(
            code=ident,
            display=name.strip() or code,  # concept_name is NOT NULL in the CDM; be lenient
            attributes={
                "domain": domain or None,
                "vocabulary": vocabulary or None,
                "concept_class": klass or None,
                "standard": standard == "S",  # 'C' (classification) and '' are not standard
                "standard_concept": standard or None,
                "source_code": code or None,
                "invalid_reason": invalid or None,
            },
            active=not invalid,  # 'D' deleted, 'U' upgraded (replaced)
        )
    return concepts


def _concept_id(value: str, path: Path, line: int) -> str:
    value = value.strip()
    if not value.lstrip("-").isdigit():
        raise TerminologyFormatError(path, line, f"concept_id {value!r} is not an integer")
    return value


def _add_synonyms(path: Path, concepts: dict[str, Concept]) -> None:
    table = Table(path, required=("concept_id", "concept_synonym_name"))
    ident, name = table.index("concept_id"), table.index("concept_synonym_name")
    for _, fields in table.rows():
        concept = concepts.get(fields[ident].strip())
        if concept is not None:
            concept.synonyms.append(fields[name])
    for concept in concepts.values():
        if concept.synonyms:
            concept.synonyms = distinct(concept.synonyms, besides=concept.display)


def _add_parents(path: Path, concepts: dict[str, Concept]) -> None:
    """Valid "Is a" rows whose both ends are loaded. A full Athena CONCEPT_RELATIONSHIP holds
    tens of millions of rows: lines without "Is a" are skipped before they are parsed."""
    columns = ("concept_id_1", "concept_id_2", "relationship_id", "invalid_reason")
    table = Table(path, required=columns)
    child_at, parent_at, kind_at, invalid_at = (table.index(c) for c in columns)
    for _, fields in table.rows(containing=IS_A):
        if fields[kind_at] != IS_A or fields[invalid_at]:
            continue
        child, parent = concepts.get(fields[child_at].strip()), fields[parent_at].strip()
        if child is not None and parent in concepts and parent not in child.parents:
            child.parents.append(parent)


def _add_successors(path: Path, concepts: dict[str, Concept]) -> None:
    """`replaced_by` of each invalid concept ('U' upgraded, 'D' deleted): valid `Concept replaced
    by` then `Maps to` targets. One pass per relationship, only when the release has invalid concepts."""
    invalid = {code for code, concept in concepts.items() if not concept.active}
    if not invalid:
        return
    columns = ("concept_id_1", "concept_id_2", "relationship_id", "invalid_reason")
    found: dict[str, list[str]] = {}
    for relationship in SUCCESSOR_RELATIONSHIPS:
        table = Table(path, required=columns)
        source_at, target_at, kind_at, invalid_at = (table.index(c) for c in columns)
        for _, fields in table.rows(containing=relationship):
            source, target = fields[source_at].strip(), fields[target_at].strip()
            if fields[kind_at] == relationship and not fields[invalid_at] and source in invalid and target != source:
                found.setdefault(source, []).append(target)
    for code, targets in found.items():
        concepts[code].attributes["replaced_by"] = distinct(targets)


def _version(path: Path) -> str:
    table = Table(path, required=("vocabulary_id", "vocabulary_version"))
    ident, version = table.index("vocabulary_id"), table.index("vocabulary_version")
    for _, fields in table.rows():
        if fields[ident] == "None" and fields[version].strip():
            return fields[version].strip()
    return "unknown"
