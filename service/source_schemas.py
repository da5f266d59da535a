"""A field project's source columns in, for the API and the CLI alike: uploaded files (schema CSV, data
files with value profiles, HL7 v2 messages), a database URL, or a path on this machine.

`ingest.schema` reads every shape; this module names uploads so its readers tell them apart, refuses what
a field project cannot take, and imports the columns as items in the caller's transaction, so an import
lands whole or not at all.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

from ingest.schema import SchemaError, SourceSchema, is_database_url, read_database, read_source, redact_url
from service.crud_imports import import_items, schema_rows
from service.monitoring.feeds import Upload
from service.monitoring.field_roles import not_a_fields_project
from service.store.errors import Conflict, Invalid, Unsupported
from service.store.tables import Project, SchemaImportResult

MAX_FILES = 200  # tables per request
HL7_SUFFIXES = (".hl7", ".er7")
SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", *HL7_SUFFIXES)
# What each upload's content type makes of it; the generic types leave it to the file name's suffix.
CONTENT_TYPES = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "application/vnd.ms-excel": ".csv",  # what browsers on Windows send for a .csv
    "text/tab-separated-values": ".tsv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/parquet": ".parquet",
    "x-application/hl7-v2+er7": ".hl7",
    "application/hl7-v2": ".hl7",
}
GENERIC_TYPES = ("", "application/octet-stream", "text/plain")
ACCEPTED = "text/csv, application/vnd.apache.parquet or x-application/hl7-v2+er7"


def require_field_project(project: Project, target_models: Sequence[str]) -> None:
    """Source columns go only to a project whose target is a data model (checked before any source is read);
    Conflict (409): the project exists but is of the other kind."""
    if problem := not_a_fields_project(project, target_models):
        raise Conflict(f"source columns cannot be imported: {problem}")


def import_schema(
    session: Session, project: Project, schema: SourceSchema, actor: str, target_models: Sequence[str]
) -> SchemaImportResult:
    """One item per source column (code `table.column`), audited, in the caller's transaction."""
    require_field_project(project, target_models)
    result = import_items(session, project, schema_rows(schema), actor)
    return SchemaImportResult(**result.model_dump(), source=schema.name, tables=len(schema.tables))


def read_local_source(source: str) -> SourceSchema:
    """A path or database URL as the CLI takes it (`crosswalk project import-schema`)."""
    try:
        return read_source(source)
    except SchemaError as error:
        raise Invalid(str(error)) from None


def read_uploads(uploads: Sequence[Upload]) -> SourceSchema:
    """Uploaded files, told apart as the CLI tells files apart: one file (a schema CSV, a table, HL7 v2
    messages), or several tables (one per file, named after it) or several HL7 v2 message files."""
    if not uploads:
        raise Invalid(f"no file; send one file per table, a schema CSV or HL7 v2 messages ({ACCEPTED})")
    if len(uploads) > MAX_FILES:
        raise Invalid(f"{len(uploads)} files: at most {MAX_FILES} per request; import the rest in another")
    with tempfile.TemporaryDirectory(prefix="crosswalk-upload-") as folder:
        paths = _write_uploads(Path(folder), uploads)
        if len({p.suffix in HL7_SUFFIXES for p in paths}) > 1:
            raise Invalid("HL7 v2 messages and tables in one request: import each kind on its own")
        try:
            schema = read_source(str(paths[0] if len(paths) == 1 else folder))
        except SchemaError as error:  # name the upload, never the server's temporary folder
            raise Invalid(str(error).replace(f"{folder}/", "").replace(folder, "upload")) from None
    schema.notes = [note.replace(f"{folder}/", "") for note in schema.notes]
    schema.name = ", ".join(p.name for p in paths)[:200]  # not the temporary folder's
    return schema


def _write_uploads(folder: Path, uploads: Sequence[Upload]) -> list[Path]:
    paths: list[Path] = []
    for upload in uploads:
        path = folder / _file_name(upload)
        if path.exists():
            raise Invalid(f"two files for table {path.stem!r}: send one file per table")
        path.write_bytes(upload.data)
        paths.append(path)
    return paths


def _file_name(upload: Upload) -> str:
    """The upload's name, its table (odd characters replaced), with the suffix its content type says."""
    kind = upload.content_type.split(";")[0].strip().lower()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(upload.filename or "").name).strip("._") or "upload"
    stem, dot, suffix = name.partition(".")
    given = f".{suffix.rsplit('.', 1)[-1].lower()}" if dot else ""
    if kind in CONTENT_TYPES:
        return stem + CONTENT_TYPES[kind]
    if kind not in GENERIC_TYPES:
        raise Unsupported(f"{name}: content type {kind!r}; send {ACCEPTED}")
    if given in SUFFIXES:
        return stem + given
    if kind == "text/plain":
        return stem + ".txt"  # sniffed: HL7 v2 if it starts with MSH, else a CSV
    raise Unsupported(f"{name}: name it .csv, .parquet or .hl7, or send its content type ({ACCEPTED})")


def read_database_source(url: str, schema: str | None, store_url: str) -> SourceSchema:
    """A database's tables through a SQLAlchemy URL, with a bounded connect time; never a file on this
    server, nor the review store itself. Errors show the URL with its password masked."""
    shown = redact_url(url)
    try:
        parsed = make_url(url) if is_database_url(url) else None
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is None:  # not echoed: without a scheme, nothing says which part is a password
        raise Invalid("url: not a database URL; expected e.g. postgresql+psycopg://user:password@host:5432/db")
    if parsed.get_backend_name() == "sqlite":
        raise Invalid("a sqlite URL names a file on the server; upload its tables as CSV or Parquet files instead")
    if _same_tables(parsed, schema, make_url(store_url)):
        raise Invalid(f"{shown}: that is crosswalk's own store; name the database (or schema) of the source")
    try:
        return read_database(url, schema)
    except SchemaError as error:
        raise Invalid(str(error)) from None


_LOOPBACK = {None, "", "localhost", "127.0.0.1", "::1"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def _same_tables(source: URL, schema: str | None, store: URL) -> bool:
    """Whether the source would read the store's own tables (tokens, sessions, the audit log)."""

    def where(url: URL, named: str | None) -> tuple:
        backend = url.get_backend_name()
        host = "loopback" if url.host in _LOOPBACK else url.host
        path = re.search(r"search_path\s*=\s*([^\s,]+)", str(url.query.get("options", "")))
        named = named or (path.group(1) if path else "public")
        return backend, host, url.port or _DEFAULT_PORTS.get(backend), url.database, named

    return store.get_backend_name() != "sqlite" and where(source, schema) == where(store, None)
