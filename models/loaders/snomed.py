"""SNOMED CT from an RF2 Snapshot: concept, description and (optional) relationship files.

Display: the preferred synonym in the US English language refset when the release's language
refset is present (then the GB one, then any other), else the FSN without its semantic tag:
"Myocardial infarction (disorder)" -> "Myocardial infarction", semantic_tag "disorder".
Synonyms: the tag-less FSN and every other active synonym. Parents: active inferred IS-A
relationships. The version is the newest effectiveTime, which is the release date in a Snapshot.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.loaders._common import Table, distinct
from models.terminology import Concept, Terminology, TerminologyFormatError, without_gc

FORMAT = "snomed"

CONCEPT_FILES = "sct2_Concept_*Snapshot*.txt"
DESCRIPTION_FILES = "sct2_Description_*Snapshot*.txt"
RELATIONSHIP_FILES = "sct2_Relationship_*Snapshot*.txt"  # inferred; stated ones are OWL axioms
LANGUAGE_FILES = "der2_cRefset_Language*Snapshot*.txt"

FSN = "900000000000003001"
SYNONYM = "900000000000013009"
IS_A = "116680003"
PREFERRED = "900000000000548007"
DEFINED = "900000000000073002"
# Language refsets in order of preference; a refset not listed ranks after them.
LANGUAGE_REFSETS = ("900000000000509007", "900000000000508004")  # US English, GB English

SEMANTIC_TAG = re.compile(r"^(.*\S)\s+\(([^()]+)\)$")


@dataclass(frozen=True)
class ReleaseFiles:
    concepts: Path
    descriptions: list[Path]
    relationships: list[Path]
    languages: list[Path]

    @classmethod
    def find(cls, path: Path) -> ReleaseFiles:
        """From the release root, its Snapshot/Terminology folder or the concept file itself."""
        concepts = _concept_file(path)
        folder = concepts.parent
        descriptions = sorted(folder.glob(DESCRIPTION_FILES))
        if not descriptions:
            problem = f"no {DESCRIPTION_FILES} next to {concepts.name}"
            raise TerminologyFormatError(folder, None, problem)
        refsets = folder.parent / "Refset"  # Snapshot/Terminology -> Snapshot/Refset/Language
        languages = sorted(folder.glob(LANGUAGE_FILES))
        if refsets.is_dir():
            languages += sorted(refsets.rglob(LANGUAGE_FILES))
        return cls(concepts, descriptions, sorted(folder.glob(RELATIONSHIP_FILES)), languages)


def _concept_file(path: Path) -> Path:
    if path.is_file():
        if not fnmatch.fnmatch(path.name, CONCEPT_FILES):
            raise TerminologyFormatError(path, None, f"expected a {CONCEPT_FILES} file or a folder")
        return path
    found = sorted(path.glob(CONCEPT_FILES)) or sorted(path.rglob(CONCEPT_FILES))
    if len(found) != 1:
        problem = f"expected one {CONCEPT_FILES} under this folder, found {len(found)}"
        raise TerminologyFormatError(path, None, problem)
    return found[0]


@dataclass(slots=True)
class _Names:
    fsn: str = ""
    preferred: str = ""
    preferred_rank: int = len(LANGUAGE_REFSETS) + 1
    synonyms: list[str] = field(default_factory=list)
    retired: str = ""  # an inactive description's term, the last resort for a display


@dataclass(slots=True)
class _Release:
    """What the files say, keyed by concept id."""

    active: dict[str, bool] = field(default_factory=dict)
    defined: dict[str, bool] = field(default_factory=dict)
    names: dict[str, _Names] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)
    version: str = ""


@without_gc
def load(path: Path, name: str = "snomed") -> Terminology:
    files = ReleaseFiles.find(Path(path))
    release = _Release()
    _read_concepts(files.concepts, release)
    ranks = _preferred_ranks(files.languages)
    for descriptions in files.descriptions:
        _read_descriptions(descriptions, release, ranks)
    for relationships in files.relationships:
        _read_parents(relationships, release)
    concepts = [_concept(code, release, files.concepts) for code in release.active]
    return Terminology(name, FORMAT, release.version or "unknown", concepts)


def _rf2(path: Path, *required: str) -> Table:
    # RF2 is tab-separated UTF-8 and never quotes: a term may contain a bare '"'.
    return Table(path, required=required, delimiter="\t", quoted=False)


def _read_concepts(path: Path, release: _Release) -> None:
    columns = ("id", "effectiveTime", "active", "definitionStatusId")
    table = _rf2(path, *columns)
    ident, time, active, status = (table.index(c) for c in columns)
    newest = release.version
    for line, row in table.rows():
        code = row[ident]
        if not code:
            raise TerminologyFormatError(path, line, "empty concept id")
        release.active[code] = row[active] == "1"
        release.defined[code] = row[status] == DEFINED
        if row[time] > newest:
            newest = row[time]
    release.version = newest
    if not release.active:
        raise TerminologyFormatError(path, 2, "no concept rows")


def _preferred_ranks(paths: list[Path]) -> dict[str, int]:
    """Description id -> rank of the most preferred language refset that prefers it."""
    ranks: dict[str, int] = {}
    for path in paths:
        columns = ("active", "refsetId", "referencedComponentId", "acceptabilityId")
        table = _rf2(path, *columns)
        active, refset, member, acceptability = (table.index(c) for c in columns)
        for _, row in table.rows(containing=PREFERRED):
            if row[active] == "1" and row[acceptability] == PREFERRED:
                rank = _refset_rank(row[refset])
                if rank < ranks.get(row[member], rank + 1):
                    ranks[row[member]] = rank
    return ranks


def _refset_rank(refset: str) -> int:
    return LANGUAGE_REFSETS.index(refset) if refset in LANGUAGE_REFSETS else len(LANGUAGE_REFSETS)


def _read_descriptions(path: Path, release: _Release, ranks: dict[str, int]) -> None:
    columns = ("id", "effectiveTime", "active", "conceptId", "typeId", "term")
    table = _rf2(path, *columns)
    ident, time, active, concept, kind, term = (table.index(c) for c in columns)
    described, known, newest = release.names, release.active, release.version
    for _, row in table.rows():
        names = described.get(row[concept])
        if names is None:
            if row[concept] not in known:
                continue  # an extension describing another module's concept
            names = described[row[concept]] = _Names()
        if row[time] > newest:
            newest = row[time]
        text = row[term].strip()
        if row[active] != "1":
            names.retired = names.retired or text
        elif row[kind] == FSN:
            names.fsn = names.fsn or text
        elif row[kind] == SYNONYM:
            names.synonyms.append(text)
            rank = ranks.get(row[ident], names.preferred_rank)
            if rank < names.preferred_rank:
                names.preferred, names.preferred_rank = text, rank
    release.version = newest


def _read_parents(path: Path, release: _Release) -> None:
    columns = ("active", "sourceId", "destinationId", "typeId")
    table = _rf2(path, *columns)
    active, source, destination, kind = (table.index(c) for c in columns)
    for _, row in table.rows(containing=IS_A):
        if row[kind] == IS_A and row[active] == "1" and row[source] in release.active:
            release.parents.setdefault(row[source], []).append(row[destination])


def _concept(code: str, release: _Release, concept_file: Path) -> Concept:
    names = release.names.get(code) or _Names()
    fsn_term, tag = split_semantic_tag(names.fsn)
    display = names.preferred or fsn_term or next(iter(names.synonyms), "") or names.retired
    if not display:
        raise TerminologyFormatError(concept_file, None, f"concept {code} has no description")
    return Concept(
        code=code,
        display=display,
        synonyms=distinct([fsn_term, *names.synonyms], besides=display),
        parents=sorted(set(release.parents.get(code, ()))),
        attributes={
            "fsn": names.fsn or None,
            "semantic_tag": tag,
            "definition_status": "defined" if release.defined[code] else "primitive",
        },
        active=release.active[code],
    )


def split_semantic_tag(fsn: str) -> tuple[str, str | None]:
    """'Myocardial infarction (disorder)' -> ('Myocardial infarction', 'disorder')."""
    match = SEMANTIC_TAG.match(fsn)
    return (match.group(1), match.group(2)) if match else (fsn, None)
