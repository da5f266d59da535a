"""Source schemas: the tables and columns a team has, read from what it actually holds.

Four shapes are read into one `SourceSchema`:

- a schema CSV (`table,column,description,type,table_description`; only `table` and `column` needed);
- data files (CSV or Parquet, one table per file, or a folder of them): the header plus a profile of
  the values (type, share missing, distinct count, dates, code shapes, units, numeric range, examples);
- a live database through a SQLAlchemy URL: tables, columns, types, comments, keys and a bounded
  sample of values (the URL's password is never printed);
- HL7 v2 messages: each segment field present, named as the standard names it (`PID-7 Date/Time of Birth`).

Bad input raises `SchemaError` with one line naming the file and the fix; a huge table is cut to
`MAX_COLUMNS` columns and says so in `SourceSchema.notes`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ingest.hl7v2 import split_messages

MAX_COLUMNS = 2000  # per source: a 5,000-column table is cut, not ranked for minutes
SAMPLE_ROWS = 2000  # rows profiled per table (files and databases alike)
CONNECT_TIMEOUT = 10  # seconds to reach a database server before giving up
EXAMPLES = 5
HL7_DATA = Path(__file__).resolve().parents[1] / "data" / "hl7v2"
HL7_FIELDS = HL7_DATA / "segment_fields.csv"
HL7_SEGMENTS = HL7_DATA / "segment_names.csv"


class SchemaError(ValueError):
    """A source that cannot be read as a schema: one line, naming the file and the fix."""


@dataclass
class ValueProfile:
    """What a column's values look like: the evidence a reviewer reads beside the candidates."""

    kind: str  # integer | number | date | datetime | boolean | code | text | empty
    rows: int
    missing_share: float
    distinct: int
    patterns: list[str] = field(default_factory=list)  # e.g. "icd10", "loinc", "snomed", "unit", "date"
    minimum: float | None = None
    maximum: float | None = None
    examples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line a person (and the text matcher) can read: 'date; 0% missing; e.g. 2101-10-20'."""
        parts = [self.kind] + self.patterns
        if self.minimum is not None:
            parts.append(f"range {self.minimum:g} to {self.maximum:g}")
        parts.append(f"{self.missing_share:.0%} missing, {self.distinct} distinct")
        if self.examples:
            parts.append("e.g. " + ", ".join(self.examples[:3]))
        return "; ".join(parts)


@dataclass
class SourceColumn:
    table: str
    column: str
    description: str = ""
    type: str = ""  # as declared by the source (`varchar(20)`, `DTM`, `int64`); "" when unknown
    table_description: str = ""
    primary_key: bool = False
    foreign_key: str = ""  # "table.column" it references, when declared
    profile: ValueProfile | None = None

    @property
    def key(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class SourceSchema:
    name: str
    columns: list[SourceColumn]
    notes: list[str] = field(default_factory=list)  # what was cut or skipped, for the user

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(c.table for c in self.columns))


# --- schema CSV ------------------------------------------------------------------------------------

SCHEMA_COLUMNS = ("table", "column", "description", "type", "table_description")
_HEADER_ALIASES = {
    "table": ("table", "table_name", "source_table", "cdmtablename", "entity", "entity_name", "dataset", "file"),
    "column": (
        "column",
        "column_name",
        "field",
        "field_name",
        "source_column",
        "source_field",
        "cdmfieldname",
        "attribute",
        "attribute_name",
        "variable",
        "variable_name",
        "element",
    ),
    "description": (
        "description",
        "column_description",
        "field_description",
        "attribute_description",
        "definition",
        "comment",
        "comments",
        "label",
        "userguidance",
    ),
    "type": ("type", "data_type", "datatype", "column_type", "cdmdatatype"),
    "table_description": ("table_description", "tabledescription", "table_definition"),
}


def read_schema_csv(path: Path, encoding: str = "utf-8-sig") -> SourceSchema:
    """A schema CSV: one row per column; header names are matched case-insensitively with common aliases."""
    path = Path(path)
    text = _read_text(path, encoding)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise SchemaError(f"{path}: empty file; expected a header table,column[,description,type,table_description]")
    positions = _schema_positions(header)
    if "table" not in positions or "column" not in positions:
        raise SchemaError(
            f"{path}:1: header {','.join(header)[:120]!r} lacks table and column; "
            "expected table,column[,description,type,table_description]"
        )
    columns: dict[tuple[str, str], SourceColumn] = {}
    notes: list[str] = []
    for line, row in enumerate(reader, start=2):
        values = {name: (row[i].strip() if i < len(row) else "") for name, i in positions.items()}
        if not any(values.values()):
            continue
        if not values["table"] or not values["column"]:
            raise SchemaError(f"{path}:{line}: table and column must both be filled in")
        key = (values["table"], values["column"])
        if key in columns:  # a repeated column (e.g. one row per mapping target): its first description holds
            continue
        if len(columns) >= MAX_COLUMNS:
            notes.append(f"{path}: only the first {MAX_COLUMNS} columns were read")
            break
        columns[key] = SourceColumn(**{k: _clean(v) for k, v in values.items()})
    if not columns:
        raise SchemaError(f"{path}: no columns below the header; add one row per source column")
    return SourceSchema(path.stem, list(columns.values()), notes)


def _schema_positions(header: list[str]) -> dict[str, int]:
    normalized = [re.sub(r"[^a-z]", "", h.lower()) for h in header]
    positions = {}
    for name, aliases in _HEADER_ALIASES.items():
        for alias in aliases:
            key = alias.replace("_", "")
            if key in normalized:
                positions[name] = normalized.index(key)
                break
    return positions


def _clean(value: str) -> str:
    return "" if value.upper() in {"NA", "N/A", "NULL", "NONE"} else value


# --- data files ------------------------------------------------------------------------------------

DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def read_data_files(path: Path, sample_rows: int = SAMPLE_ROWS) -> SourceSchema:
    """A CSV/Parquet file (one table, named after the file) or a folder of them, with value profiles."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise SchemaError(f"{path}: no CSV or Parquet files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise SchemaError(f"{path}: no such file or folder")
    columns: list[SourceColumn] = []
    notes: list[str] = []
    for file in files:
        frame = _read_frame(file, sample_rows)
        table = file.name.split(".")[0]
        names = list(frame.columns)
        if len(columns) + len(names) > MAX_COLUMNS:
            names = names[: max(MAX_COLUMNS - len(columns), 0)]
            notes.append(f"{file}: only {len(names)} of {len(frame.columns)} columns were read (limit {MAX_COLUMNS})")
        for name in names:
            columns.append(
                SourceColumn(table, str(name), type=str(frame[name].dtype), profile=profile_values(frame[name]))
            )
        if len(columns) >= MAX_COLUMNS:
            break
    return SourceSchema(path.stem, columns, notes)


def _read_frame(file: Path, sample_rows: int):
    import pandas as pd

    if file.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(file)
            batch = next(parquet.iter_batches(batch_size=sample_rows), None)
            frame = batch.to_pandas() if batch is not None else parquet.schema_arrow.empty_table().to_pandas()
        except Exception as error:  # pyarrow raises many types for a damaged file
            raise SchemaError(f"{file}: not a readable Parquet file ({type(error).__name__})") from None
        return frame.astype("string").astype(object).where(frame.notna(), None)
    head = file.open("rb").read(8192)
    if b"\x00" in head:
        raise SchemaError(f"{file}: binary data, not a CSV file; export the table as CSV or Parquet")
    sep = "\t" if file.suffix.lower() == ".tsv" or head.count(b"\t") > head.count(b",") else ","
    try:
        frame = pd.read_csv(
            file, sep=sep, nrows=sample_rows, dtype=str, keep_default_na=False, encoding_errors="replace"
        )
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{file}: empty file; expected a header row naming the columns") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SchemaError(f"{file}: cannot be read as CSV ({first})") from None
    if _header_looks_like_data(list(frame.columns)):
        raise SchemaError(f"{file}: the first row holds values, not column names; add a header row")
    return frame


def _header_looks_like_data(names: list[str]) -> bool:
    """Most header cells look like numbers or dates: the file has no header."""
    valuelike = sum(bool(re.fullmatch(r"[-+]?[\d.,/: -]+", str(n).strip())) for n in names)
    return valuelike > len(names) / 2


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{8}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2})?.*|\d{12,14}([.+-].*)?")
_PATTERNS = {
    "icd10": re.compile(r"[A-TV-Z]\d{2}(\.?[0-9A-Z]{1,4})?"),
    "icd9": re.compile(r"(\d{3}(\.\d{1,2})?|V\d{2}(\.\d{1,2})?|E\d{3}(\.\d)?)"),
    "loinc": re.compile(r"\d{1,5}-\d"),
    "snomed": re.compile(r"\d{6,18}"),
    "ndc": re.compile(r"\d{4,5}-\d{3,4}-\d{1,2}|\d{11}"),
}
_UNITS = frozenset(
    "mg/dl g/dl mmol/l meq/l iu/l u/l % mg g kg ml l mm[hg] mmhg bpm /min cm mm in lb lbs kg/m2 ng/ml pg/ml ug/ml "
    "k/ul m/ul fl pg 10*3/ul 10*6/ul 10^9/l 10^12/l sec s min h hr days mosm/kg mg/l umol/l ml/min cells/ul".split()
)
_BOOLEAN = frozenset("0 1 y n yes no t f true false".split())


def profile_values(values) -> ValueProfile:
    """Profile a column's sampled values (strings or anything with a str form; None/'' are missing)."""
    raw = [v for v in values]
    present = [str(v).strip() for v in raw if v is not None and str(v).strip() not in ("", "nan", "NaN", "None")]
    rows = len(raw)
    missing = 1.0 - len(present) / rows if rows else 1.0
    distinct = Counter(present)
    examples = [v[:40] for v, _ in distinct.most_common(EXAMPLES)]
    if not present:
        return ValueProfile("empty", rows, missing, 0)
    share = lambda test: sum(map(test, present)) / len(present)  # noqa: E731
    numbers = [_number(v) for v in present]
    numeric = [n for n in numbers if n is not None]
    patterns: list[str] = []
    if share(lambda v: v.lower() in _UNITS) >= 0.5:
        patterns.append("unit")
    if len(distinct) <= 2 and all(v.lower() in _BOOLEAN for v in distinct):
        kind = "boolean"
    elif share(lambda v: bool(_DATETIME.fullmatch(v))) >= 0.8:
        kind, patterns = "datetime", patterns + ["date"]
    elif share(lambda v: bool(_DATE.fullmatch(v))) >= 0.8:
        kind, patterns = "date", patterns + ["date"]
    elif len(numeric) >= 0.9 * len(present):
        kind = "integer" if all(float(n).is_integer() for n in numeric) else "number"
    elif share(lambda v: len(v) <= 20 and " " not in v) >= 0.8:
        kind = "code"
    else:
        kind = "text"
    if kind in ("code", "integer"):
        for name, pattern in _PATTERNS.items():
            if share(lambda v, p=pattern: bool(p.fullmatch(v))) >= 0.8 and not (name == "snomed" and kind == "integer"):
                patterns.append(name)
                break
    low = high = None
    if kind in ("integer", "number"):
        low, high = float(min(numeric)), float(max(numeric))
    return ValueProfile(kind, rows, round(missing, 4), len(distinct), patterns, low, high, examples)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _read_text(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise SchemaError(f"{path}: binary data, not a CSV file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise SchemaError(f"{path}: not {encoding} text (byte {error.start}); re-save it as UTF-8") from None


# --- databases -------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def is_database_url(text: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+]*://", text)) and not text.startswith("file://")


def read_database(
    url: str, schema: str | None = None, sample_rows: int = SAMPLE_ROWS, connect_timeout: int = CONNECT_TIMEOUT
) -> SourceSchema:
    """Tables and columns of a live database (SQLAlchemy URL) with types, comments, keys and value profiles.
    An unreachable server is a `SchemaError` after `connect_timeout` seconds (PostgreSQL, MySQL)."""
    import sqlalchemy as sa

    shown = redact_url(url)
    try:
        parsed = sa.engine.make_url(url)
        engine = sa.create_engine(parsed, connect_args=_timeout_args(parsed.get_backend_name(), connect_timeout))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as error:
        raise SchemaError(f"{shown}: not a usable database URL ({type(error).__name__})") from None
    try:
        with engine.connect() as connection:
            return _read_tables(connection, sa.inspect(connection), schema, shown, sample_rows)
    except SchemaError:
        raise
    except (sa.exc.SQLAlchemyError, OSError, TypeError, ValueError) as error:  # drivers raise their own types too
        raise SchemaError(
            f"{shown}: cannot read the database ({_reason(error, parsed.password)}); "
            "check the URL, server and permissions"
        ) from None
    finally:
        engine.dispose()


def _timeout_args(backend: str, seconds: int) -> dict[str, int]:
    """The driver's connect timeout: without one, a host that drops packets holds the caller for minutes."""
    return {"connect_timeout": seconds} if backend in ("postgresql", "mysql", "mariadb") else {}


def _reason(error: Exception, password: str | None) -> str:
    """The driver's first line ('OperationalError: connection to server at ... failed: Connection
    refused'), with any echo of the password masked."""
    cause = getattr(error, "orig", None) or error
    first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    for secret in {password, quote(password or "", safe="")} - {None, ""}:
        first = first.replace(secret, "***")
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__


def _read_tables(connection, inspector, schema, shown, sample_rows) -> SourceSchema:
    import sqlalchemy as sa

    columns: list[SourceColumn] = []
    notes: list[str] = []
    tables = inspector.get_table_names(schema=schema)
    if not tables:
        raise SchemaError(f"{shown}: no tables{f' in schema {schema}' if schema else ''}")
    for table in tables:
        declared = inspector.get_columns(table, schema=schema)
        keys = set(inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
        foreign = {}
        for fk in inspector.get_foreign_keys(table, schema=schema):
            for mine, theirs in zip(fk["constrained_columns"], fk["referred_columns"]):
                foreign[mine] = f"{fk['referred_table']}.{theirs}"
        comment = _table_comment(inspector, table, schema)
        room = MAX_COLUMNS - len(columns)
        if len(declared) > room:
            notes.append(f"{table}: only {room} of {len(declared)} columns were read (limit {MAX_COLUMNS})")
            declared = declared[:room]
        sample = _sample(connection, sa, table, schema, [c["name"] for c in declared], sample_rows)
        for position, col in enumerate(declared):
            values = [row[position] for row in sample]
            columns.append(
                SourceColumn(
                    table,
                    col["name"],
                    description=col.get("comment") or "",
                    type=str(col["type"]).lower(),
                    table_description=comment,
                    primary_key=col["name"] in keys,
                    foreign_key=foreign.get(col["name"], ""),
                    profile=profile_values(values),
                )
            )
        if len(columns) >= MAX_COLUMNS:
            break
    return SourceSchema(shown.rsplit("/", 1)[-1] or "database", columns, notes)


def _table_comment(inspector, table: str, schema: str | None) -> str:
    try:
        return (inspector.get_table_comment(table, schema=schema) or {}).get("text") or ""
    except NotImplementedError:  # SQLite has no table comments
        return ""


def _sample(connection, sa, table, schema, names, rows):
    if not names:
        return []
    selected = sa.select(*[sa.column(n) for n in names]).select_from(sa.table(table, schema=schema)).limit(rows)
    return connection.execute(selected).fetchall()


# --- HL7 v2 ----------------------------------------------------------------------------------------


def hl7_field_names() -> dict[str, tuple[str, str]]:
    """`PID-7` -> ("Date/Time of Birth", "DTM") from HL7's v2-to-FHIR segment tables (bundled)."""
    with HL7_FIELDS.open(encoding="utf-8") as handle:
        return {row["field"]: (row["name"], row["type"]) for row in csv.DictReader(handle)}


def hl7_segment_names() -> dict[str, str]:
    """`PID` -> "Patient Identification": the standard segment names (bundled)."""
    with HL7_SEGMENTS.open(encoding="utf-8") as handle:
        return {row["segment"]: row["name"] for row in csv.DictReader(handle)}


def read_hl7_messages(paths: list[Path], max_examples: int = EXAMPLES) -> SourceSchema:
    """Segment fields present in HL7 v2 messages, named by the standard, profiled from their values."""
    names, segments = hl7_field_names(), hl7_segment_names()
    values: dict[str, list[str]] = {}
    for path in paths:
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        if b"\x00" in data[:8192] or not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"MSH"):
            raise SchemaError(f"{path}: not an HL7 v2 message (it must start with MSH)")
        for raw, _line in split_messages(data):  # the one framing of HL7 v2 files (ingest/hl7v2.py)
            _collect_fields(raw.decode("utf-8", errors="replace"), values)
    if not values:
        raise SchemaError("no HL7 v2 segments found in the given files")
    columns = []
    for key in sorted(values, key=_hl7_order):
        segment = key.split("-")[0]
        name, datatype = names.get(key, ("", ""))
        profile = profile_values(values[key])
        columns.append(SourceColumn(segment, key, name, datatype, segments.get(segment, ""), profile=profile))
    return SourceSchema("hl7v2", columns[:MAX_COLUMNS])


def _collect_fields(message: str, values: dict[str, list[str]]) -> None:
    """Append each non-empty field of one message to values["SEG-n"] (field numbers as the standard counts)."""
    if not message.startswith("MSH") or len(message) < 4:
        return
    separator = message[3]
    for segment in message.split("\r"):
        parts = segment.split(separator)
        kind = parts[0].strip()
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", kind):
            continue
        offset = 1 if kind == "MSH" else 0  # MSH-1 is the separator itself
        for index, value in enumerate(parts[1:], start=1):
            if value:
                values.setdefault(f"{kind}-{index + offset}", []).append(value)


def _hl7_order(key: str) -> tuple[str, int]:
    segment, _, number = key.partition("-")
    return segment, int(number)


# --- any source ------------------------------------------------------------------------------------


def read_source(source: str) -> SourceSchema:
    """A schema CSV, data file or folder, SQLAlchemy URL or HL7 v2 file(s), told apart by shape."""
    if is_database_url(source):
        return read_database(source)
    path = Path(source)
    if path.is_dir():
        hl7 = sorted(p for p in path.iterdir() if p.suffix.lower() in (".hl7", ".er7"))
        return read_hl7_messages(hl7) if hl7 else read_data_files(path)
    if not path.is_file():
        raise SchemaError(f"{source}: no such file or folder (nor a database URL like postgresql://host/db)")
    if path.suffix.lower() in (".hl7", ".er7") or path.read_bytes()[:8].lstrip(b"\xef\xbb\xbf \r\n")[:3] == b"MSH":
        return read_hl7_messages([path])
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and _is_schema_csv(path):
        return read_schema_csv(path)
    return read_data_files(path)


def _is_schema_csv(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = next(csv.reader([handle.readline()]), [])
    positions = _schema_positions(header)
    return "table" in positions and "column" in positions
