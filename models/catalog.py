"""The local catalog: terminologies loaded once from release files and kept under one folder.

`root/<name>.jsonl.gz` holds a loaded terminology. ICD-10-CM is built in: read from the
`simple-icd-10-cm` package the first time it is asked for, then kept like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.loaders import load_terminology
from models.systems import FORMAT_SYSTEMS, CodeSystem, system_for
from models.terminology import Concept, Terminology

BUILT_IN = {"icd10cm": "icd10cm"}  # name -> format of terminologies crosswalk ships
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    format: str
    version: str
    concepts: int
    built_in: bool
    system: str | None = None  # the FHIR system URI the loader recorded (None: loaded before it did)


class UnknownTerminology(LookupError):
    pass


class Catalog:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.jsonl.gz"

    def stamp(self, name: str) -> int | None:
        """When the terminology's file last changed (None: not loaded yet); caches compare it."""
        path = self._path(name)
        return path.stat().st_mtime_ns if path.exists() else None

    def add(self, fmt: str, source: Path, name: str) -> Terminology:
        """Parse a release file and keep it under `name` (replacing an older load of it)."""
        if not _NAME.match(name):
            raise ValueError(f"invalid terminology name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        if name in BUILT_IN:
            raise ValueError(f"{name!r} is a built-in terminology; choose another name")
        terminology = load_terminology(fmt, Path(source), name)
        if not len(terminology):
            raise ValueError(f"{source}: no concepts found")
        terminology.save(self._path(name))
        return terminology

    def get(self, name: str) -> Terminology:
        path = self._path(name)
        if path.exists() and (name not in BUILT_IN or self._built_in_is_current(path)):
            return Terminology.load(path)
        if name in BUILT_IN:
            from models.loaders import icd10cm

            terminology = icd10cm.load(None, name)
            terminology.save(path)
            return terminology
        raise UnknownTerminology(
            f"unknown terminology {name!r}; available: {', '.join(self.names())}. "
            "Load one with `crosswalk terminology load --format FORMAT PATH --name NAME`."
        )

    @staticmethod
    def _built_in_is_current(path: Path) -> bool:
        from models.loaders.icd10cm import LOADER_REVISION

        return f"crosswalk loader {LOADER_REVISION})" in Terminology.read_header(path)[0]["version"]

    def names(self) -> list[str]:
        loaded = {p.name.removesuffix(".jsonl.gz") for p in self.root.glob("*.jsonl.gz")}
        return sorted(loaded | set(BUILT_IN))

    def entries(self) -> list[CatalogEntry]:
        return [self._entry(name) for name in self.names()]

    def _entry(self, name: str) -> CatalogEntry:
        path = self._path(name)
        if not path.exists():  # built in, not yet materialised: say so instead of parsing 10 MB
            return CatalogEntry(name, BUILT_IN[name], "bundled (not yet loaded)", 0, True)
        header, count = Terminology.read_header(path, count=True)
        return CatalogEntry(name, header["format"], header["version"], count, name in BUILT_IN, header.get("system"))

    # -- identity: what a terminology is, read from its header only ---------------------------------
    def identity(self, name: str) -> CodeSystem:
        """The code system a terminology holds (its version is the terminology's own, `entries()`).

        Terminologies loaded before the system was recorded fall back to their format, then to a
        guess from the name."""
        path = self._path(name)
        if path.exists():
            header = Terminology.read_header(path)[0]
            recorded = header.get("system") or FORMAT_SYSTEMS.get(header.get("format", ""))
            return system_for(recorded, name)
        if name in BUILT_IN:
            return system_for(FORMAT_SYSTEMS[BUILT_IN[name]], name)
        return system_for(None, name)

    def holding(self, system: CodeSystem) -> list[str]:
        """Names of the loaded terminologies that hold `system`, by recorded system (or name guess)."""
        return [name for name in self.names() if self._path(name).exists() and self.identity(name).uri == system.uri]

    def stream(self, name: str, containing: str = "") -> Iterator[Concept]:
        """A loaded terminology's concepts one at a time (see `Terminology.stream`)."""
        return Terminology.stream(self._path(name), containing)
