"""Target data models: the tables and fields a source column can map to (OMOP CDM, FHIR R4, custom).

A target model is to fields what a terminology is to codes. Bundled: OMOP CDM 5.4 and 5.3 (OHDSI's
field- and table-level CSVs) and FHIR R4 (resources and their top-level elements). Custom models are
schema CSVs in the shape `table,column,description,type,table_description` (see ingest/schema.py).
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ingest.schema import SchemaError, read_schema_csv

DATA = Path(__file__).resolve().parents[2] / "data" / "targets"
OMOP_VERSIONS = {"omop-cdm-5.4": "5.4", "omop-cdm-5.3": "5.3"}
BUNDLED = (*OMOP_VERSIONS, "fhir-r4")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class UnknownTarget(LookupError):
    """A target name that is neither bundled, loaded nor a readable schema CSV."""


@dataclass(frozen=True)
class TargetField:
    table: str
    column: str
    description: str = ""
    type: str = ""
    required: bool = False
    primary_key: bool = False
    foreign_key: str = ""  # "table.column" it references

    @property
    def key(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class TargetModel:
    name: str
    version: str
    fields: list[TargetField]
    table_descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(f.table for f in self.fields))


# --- OMOP CDM --------------------------------------------------------------------------------------


def load_omop(version: str = "5.4") -> TargetModel:
    return _load_omop(version)


@lru_cache(maxsize=4)
def _load_omop(version: str) -> TargetModel:
    folder = DATA / "omop-cdm"
    tables = {
        row["cdmTableName"].lower(): _omop_text(row["tableDescription"], row["userGuidance"])
        for row in _rows(folder / f"OMOP_CDMv{version}_Table_Level.csv")
    }
    fields = []
    for row in _rows(folder / f"OMOP_CDMv{version}_Field_Level.csv"):
        foreign = row["fkTableName"].lower() if row["isForeignKey"] == "Yes" and row["fkTableName"] != "NA" else ""
        fields.append(
            TargetField(
                table=row["cdmTableName"].lower(),
                column=row["cdmFieldName"].lower(),
                description=_omop_text(row["userGuidance"], row["etlConventions"]),
                type=row["cdmDatatype"].lower(),
                required=row["isRequired"] == "Yes",
                primary_key=row["isPrimaryKey"] == "Yes",
                foreign_key=f"{foreign}.{row['fkFieldName'].lower()}" if foreign else "",
            )
        )
    return TargetModel(f"omop-cdm-{version}", version, fields, tables)


def _omop_text(*parts: str) -> str:
    """Guidance without markdown links and NA placeholders: '[PERSON](https://...)' -> 'PERSON'."""
    text = " ".join(p for p in parts if p and p != "NA")
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"https?://\S+|\s+", " ", text).strip()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        return list(csv.DictReader(handle))


# --- FHIR R4 ---------------------------------------------------------------------------------------

FHIR_CSV = DATA / "fhir-r4" / "elements.csv"
# Elements every resource inherits: noise for a source column (extension, narrative, metadata).
_FHIR_SKIP = frozenset("fhir_comments meta implicitRules language text contained extension modifierExtension".split())


@lru_cache(maxsize=1)
def load_fhir_r4() -> TargetModel:
    rows = _rows(FHIR_CSV)
    fields = [TargetField(r["table"], r["column"], r["description"], r["type"], r["required"] == "yes") for r in rows]
    tables = {r["table"]: r["table_description"] for r in rows if r["table_description"]}
    return TargetModel("fhir-r4", "4.0", fields, tables)


def export_fhir_r4(path: Path = FHIR_CSV) -> int:
    """Write FHIR resources' top-level elements from `fhir.resources` (R4B models) to a CSV; rows written.

    Run once when the package is upgraded; serving reads the CSV, so `fhir.resources` is no runtime
    dependency. Choice elements (valueQuantity, valueString, ...) become one `value[x]` row.
    """
    import importlib
    import pkgutil

    import fhir.resources.R4B as r4b
    from fhir.resources.R4B.domainresource import DomainResource

    rows = []
    for module_info in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"fhir.resources.R4B.{module_info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and issubclass(cls, DomainResource) and cls is not DomainResource):
                continue
            if cls.__module__ != module.__name__ or cls.get_resource_type() != cls.__name__:
                continue
            rows.extend(_fhir_rows(cls))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "column", "description", "type", "required", "table_description"])
        writer.writerows(rows)
    return len(rows)


def _fhir_rows(cls) -> list[list[str]]:
    doc = (cls.__doc__ or "").split("Primitive Data Types.")[-1]
    table_description = " ".join(doc.split())
    elements: dict[str, list] = {}
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra or {}
        if name in _FHIR_SKIP or name.endswith("__ext") or not extra.get("element_property"):
            continue
        choice = extra.get("one_of_many")
        column = f"{choice}[x]" if choice else name
        short = info.title or ""
        description = short if not info.description or info.description == short else f"{short}. {info.description}"
        required = bool(extra.get("element_required") or extra.get("one_of_many_required"))
        entry = elements.setdefault(column, [cls.__name__, column, description, [], required, None])
        entry[3].append(_fhir_type(info.annotation))
    rows = [
        [t, c, d, "|".join(dict.fromkeys(types)), "yes" if r else "no", ""]
        for t, c, d, types, r, _ in elements.values()
    ]
    if rows:  # the resource's description once, on its first element
        rows[0][-1] = table_description
    return rows


def _fhir_type(annotation) -> str:
    text = str(annotation)
    primitive = re.search(r"Annotated\[[\w.]+, (\w+)\(", text)
    if primitive:  # dateTime, code, string: FHIR spells primitives in lower camel case
        return primitive.group(1)[0].lower() + primitive.group(1)[1:]
    complex_type = re.search(r"abc\.(\w+?)Type\b", text)
    if complex_type:
        return complex_type.group(1)
    return "boolean" if "bool" in text else text


# --- custom models and lookup ----------------------------------------------------------------------


def load_schema_target(path: Path, name: str | None = None) -> TargetModel:
    """Any schema CSV as a target model (its columns are the target fields)."""
    schema = read_schema_csv(Path(path))
    fields = [TargetField(c.table, c.column, c.description, c.type) for c in schema.columns]
    tables = {}
    for c in schema.columns:
        tables.setdefault(c.table, c.table_description)
    return TargetModel(name or Path(path).stem, "custom", fields, tables)


class TargetCatalog:
    """Bundled models plus custom ones saved (as their schema CSV) under `folder`."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else None

    def names(self) -> list[str]:
        loaded = sorted(p.stem for p in self.folder.glob("*.csv")) if self.folder and self.folder.is_dir() else []
        return [*BUNDLED, *loaded]

    def save(self, path: Path, name: str) -> TargetModel:
        """Check `path` reads as a target model, then keep a copy under `name`."""
        if not _NAME.fullmatch(name) or name in BUNDLED:
            raise SchemaError(f"target name {name!r}: use lower-case letters, digits, '.', '-' and not a bundled name")
        if self.folder is None:
            raise SchemaError("no folder configured for loaded target models")
        model = load_schema_target(path, name)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.csv.tmp"
        shutil.copyfile(path, tmp)
        tmp.replace(self.folder / f"{name}.csv")  # nothing half-written under the real name
        return model

    def get(self, name_or_path: str) -> TargetModel:
        if name_or_path in OMOP_VERSIONS:
            return load_omop(OMOP_VERSIONS[name_or_path])
        if name_or_path in ("fhir-r4", "fhir"):
            return load_fhir_r4()
        if self.folder is not None and (self.folder / f"{name_or_path}.csv").is_file():
            return load_schema_target(self.folder / f"{name_or_path}.csv", name_or_path)
        if Path(name_or_path).is_file():
            return load_schema_target(Path(name_or_path))
        raise UnknownTarget(
            f"unknown target {name_or_path!r}: use one of {', '.join(self.names())} or a schema CSV path"
        )
