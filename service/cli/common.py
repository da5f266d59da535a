"""What every command group shares: the store and its transactions, the audit actor, the serving
suggester and option parsing (the exit codes and `UserError` are in `app.py`). Commands work on
the store directly (the same functions the API calls), as the local user.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from service.cli.app import UserError
from service.settings import get_settings
from service.store.errors import StoreError

if TYPE_CHECKING:
    from service.store.messages import MessagePublic

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project id or name.")]
T = TypeVar("T")


def actor() -> str:
    """Who the audit log names for CLI changes: CROSSWALK_ACTOR, else the OS user."""
    return get_settings().actor or f"cli:{getpass.getuser()}"


def store() -> Engine:
    """The store the settings name, its schema checked (not migrated: `crosswalk db upgrade` does that)."""
    from service.store.db import check_schema, engine_for

    engine = engine_for(get_settings().database_url)
    store_call(check_schema, engine)
    return engine


@contextmanager
def transaction() -> Iterator[Session]:
    """One transaction on the store; the store's refusals become one-line user errors."""
    from service.store.db import session_scope

    engine = store()
    try:
        with session_scope(engine) as session:
            yield session
    except StoreError as error:
        raise UserError(error.detail) from None


def store_call(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)`, with the store's refusal as a one-line user error."""
    try:
        return function(*args)
    except StoreError as error:
        raise UserError(error.detail) from None


def served_terminologies():
    """The terminologies the service reads targets from (catalog and data models), for these settings."""
    from service.engine import terminologies

    return terminologies(get_settings())


def serving_suggester(terminology: str, progress: bool | None = None):
    """The suggester the service would serve for a catalog terminology (champion, else bundled).

    On a terminal the index build shows progress bars; elsewhere (CI, logs, nohup) a line before and
    after it, with counts and the time taken, so a first build of several minutes is never silent."""
    import time

    from models.catalog import UnknownTerminology
    from service.engine import get_suggester  # imports the matchers: only when a command needs them

    bars = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    if not bars:
        typer.echo(f"crosswalk: loading {terminology} (a first run builds its search index: minutes)", err=True)
    try:
        engine = get_suggester(get_settings(), terminology, bars)
    except UnknownTerminology as error:
        raise UserError(f"{error}; load it with `crosswalk terminology load`") from None
    if not bars:
        took = time.perf_counter() - started
        typer.echo(f"crosswalk: {terminology} ready: {len(engine.terminology):,} concepts, {took:.1f} s", err=True)
    return engine


def valid(model: type[T], **fields: Any) -> T:
    """`model(**fields)`, or a one-line user error naming the option that was wrong."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"--{'-'.join(map(str, first['loc'])).replace('_', '-')}: {first['msg']}") from None


def parse_where(conditions: list[str]) -> dict[str, object]:
    """`--where billable=true --where domain=Measurement` -> attribute filter."""
    wanted: dict[str, object] = {}
    for condition in conditions:
        key, sep, value = condition.partition("=")
        if not sep or not key:
            raise UserError(f"--where {condition!r}: expected ATTRIBUTE=VALUE, e.g. billable=true")
        lowered = value.lower()
        wanted[key] = True if lowered == "true" else False if lowered == "false" else value
    return wanted


EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding", help="Text encoding of the file (default UTF-8; a byte-order mark decides).", show_default=False
    ),
]


def source_rows(path: Path, format: str, encoding: str | None = None):
    """The rows of a source list (crosswalk CSV or Usagi CSV), or a one-line error naming the problem."""
    from service.crud_imports import IMPORT_FORMATS, parse_source_file

    if format not in IMPORT_FORMATS:
        raise UserError(f"--format {format!r}: choose one of {', '.join(IMPORT_FORMATS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return store_call(parse_source_file, path.read_bytes(), format, str(path), encoding)


MESSAGE_COLUMNS = f"{'id':>6}  {'received':<20} {'type':<9} {'site':<20} {'control id':<20} sha256"


def message_line(m: MessagePublic) -> str:
    """A stored message (a row or its public shape) as one line under MESSAGE_COLUMNS, safe to print."""
    line = f"{m.id:>6}  {m.received_at[:19]:<20} {m.message_type:<9} {m.site[:20]:<20} {m.control_id[:20]:<20} "
    return printable(line + m.sha256[:16])


def printable(text: str) -> str:
    """`text` safe to print on a terminal: what a sender wrote may hold escape sequences, bidirectional
    overrides or CRs; every character that is not printable is shown as its Python escape instead."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
