"""A terminology as plain data: concepts with codes, displays, synonyms, parents and attributes."""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
AttributeValue = str | int | float | bool | list[str] | None


def without_gc(load: Callable[P, R]) -> Callable[P, R]:
    """Pause the cyclic garbage collector while a loader runs.

    A release builds millions of small lists and objects that all stay alive; CPython would
    otherwise rescan them over and over (a third of RXNCONSO's load time) to find no garbage.
    """

    @wraps(load)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return load(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused


class TerminologyFormatError(ValueError):
    """A release file that cannot be read: names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(slots=True)
class Concept:
    code: str
    display: str
    synonyms: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    # Format-specific facts: LOINC component/property/system/scale/units, OMOP domain/vocabulary/
    # class/standard, ICD-10-CM billable. Values are JSON-serialisable so catalogs stay plain files.
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    active: bool = True

    def texts(self) -> list[str]:
        """The display first, then distinct synonyms: every string a source text may match."""
        seen = {self.display.casefold()}
        out = [self.display]
        for synonym in self.synonyms:
            key = synonym.casefold()
            if synonym and key not in seen:
                seen.add(key)
                out.append(synonym)
        return out


@dataclass
class Terminology:
    name: str
    format: str
    version: str
    concepts: list[Concept]
    # The FHIR system URI of what was loaded (models.systems), recorded by the loader whatever the
    # catalog name; None in catalogs saved before terminologies recorded it.
    system: str | None = None
    _by_code: dict[str, Concept] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_code = {c.code: c for c in self.concepts}

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self.concepts)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def get(self, code: str) -> Concept | None:
        return self._by_code.get(code)

    def select(self, predicate: Callable[[Concept], bool]) -> list[int]:
        """Positions of the concepts that satisfy `predicate` (used to restrict a search)."""
        return [i for i, c in enumerate(self.concepts) if predicate(c)]

    # -- persistence: gzip JSON lines, one header line then one concept per line -----------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as out:
            header = {"name": self.name, "format": self.format, "version": self.version}
            if self.system:
                header["system"] = self.system
            out.write(json.dumps(header) + "\n")
            for concept in self.concepts:
                out.write(json.dumps(asdict(concept), ensure_ascii=False) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves a half-written catalog entry

    @staticmethod
    def read_header(path: Path, count: bool = False) -> tuple[dict[str, str], int | None]:
        """The header, and the concept count when asked (that reads the whole file)."""
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            header = json.loads(next(lines))
            return header, sum(1 for _ in lines) if count else None

    @classmethod
    def load(cls, path: Path) -> Terminology:
        return without_gc(cls._read)(path)  # ICD-10-CM: ~1.6 s -> ~0.9 s

    @classmethod
    def _read(cls, path: Path) -> Terminology:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            header = json.loads(next(lines))
            concepts = [Concept(**json.loads(line)) for line in lines]
        return cls(header["name"], header["format"], header["version"], concepts, header.get("system"))

    @staticmethod
    def stream(path: Path, containing: str = "") -> Iterator[Concept]:
        """The saved concepts one by one, without holding the terminology; `containing` skips, before
        parsing, lines without that text (a cheap way through a large vocabulary)."""
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            next(lines)
            for line in lines:
                if containing in line:
                    yield Concept(**json.loads(line))


def build_terminology(name: str, fmt: str, version: str, concepts: Iterable[Concept]) -> Terminology:
    return Terminology(name=name, format=fmt, version=version, concepts=list(concepts))


# What each format offers as a mapping target unless a filter says otherwise: claims need billable
# ICD-10-CM codes (a category header is "not usable"), OMOP maps to standard concepts, and a LOINC
# panel is an order, not a result. A concept that lacks the attribute (an older load) is not judged.
DEFAULT_TARGETS: dict[str, dict[str, Any]] = {
    "icd10cm": {"billable": True},
    "omop": {"standard": True},
    "loinc": {"panel": False},
}
ANY = "any"  # `--where billable=any`: lift a default


def target_filters(fmt: str, where: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(defaults still in force, wanted): the format's defaults, narrowed or widened by `where`."""
    wanted = {k: v for k, v in (where or {}).items() if not (isinstance(v, str) and v.casefold() == ANY)}
    defaults = {k: v for k, v in DEFAULT_TARGETS.get(fmt, {}).items() if k not in (where or {})}
    return defaults, wanted


def filter_problem(terminology: Terminology, where: dict[str, Any] | None) -> str | None:
    """Why `where` matches no concept (an unknown attribute, or no concept with that value), else None:
    checked on the concepts' attributes before any index is built."""
    defaults, wanted = target_filters(terminology.format, where)
    if not wanted:
        return None
    known = {key for concept in terminology for key in concept.attributes}
    unknown = sorted(set(wanted) - known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        return f"{terminology.name} has no attribute {', '.join(map(repr, unknown))}; its attributes: {listed}"
    if not any(attributes_match(c, {**defaults, **wanted}) for c in terminology if c.active):
        return f"no concept of {terminology.name} matches the filter {wanted} (with the defaults {defaults})"
    return None


def attributes_match(concept: Concept, wanted: dict[str, Any], missing_ok: bool = False) -> bool:
    """True when every wanted attribute equals the concept's (strings compare case-insensitively)."""
    for key, expected in wanted.items():
        if missing_ok and key not in concept.attributes:
            continue
        actual = concept.attributes.get(key)
        if isinstance(actual, str) and isinstance(expected, str):
            if actual.casefold() != expected.casefold():
                return False
        elif actual != expected:
            return False
    return True
