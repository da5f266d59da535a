"""The store's engine, sessions and migrations: embedded SQLite by default, PostgreSQL by URL.

`Settings.database_url` picks the database (CROSSWALK_DATABASE_URL, else `<home>/crosswalk.db`).
Migrations run at `crosswalk serve` start and by `crosswalk db upgrade`; other commands only check
that the schema is current (`check_schema`), and create a brand-new embedded store at head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, inspect, make_url
from sqlmodel import Session, create_engine

from service.store.errors import StoreError

SERVICE = Path(__file__).resolve().parents[1]
ALEMBIC_INI = SERVICE / "alembic.ini"
MIGRATIONS = SERVICE / "migrations"


POOL_SIZE, MAX_OVERFLOW = 10, 5  # Settings.db_pool_size / db_max_overflow
READ_ONLY = "crosswalk_read_only"  # execution option: SQLite begins without the write lock
BUSY_TIMEOUT_S = 60  # an SQLite writer waits this long for the write lock (writers queue, never fail at once)


def make_engine(url: str, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    """An engine that never puts statement parameters (source texts, token hashes) in error messages.

    The service lets at most `pool_size` requests hold a session at once (`service.web.deps`); the
    overflow connections are for work that opens its own session (webhook deliveries, the CLI).
    """
    pool = {"pool_size": pool_size, "max_overflow": max_overflow}
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool)
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)


def engine_for(url: str, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    """One engine (and connection pool) per database URL and pool size in this process."""
    return _cached_engine(url, pool_size, max_overflow)


@lru_cache(maxsize=8)
def _cached_engine(url: str, pool_size: int, max_overflow: int) -> Engine:
    return make_engine(url, pool_size, max_overflow)


def _sqlite_engine(url: str, pool: dict[str, int]) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        pool = {}  # one in-memory database per connection: SQLAlchemy picks its own single-connection pool
    connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    engine = create_engine(url, hide_parameters=True, connect_args=connect_args, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" hook below issues BEGIN itself
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Writers take the write lock at BEGIN, so two transactions can never both read the audit
        # chain's tail (or an item's version) and then both append: the second waits for the first.
        # A `read_scope` reads a snapshot instead and never waits for (or holds up) a writer.
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if reading else "BEGIN IMMEDIATE")

    return engine


def concurrent_sessions(engine: Engine, pool_size: int) -> int:
    """How many requests may hold a session at once: the pool's connections, but one on SQLite. Every
    SQLite transaction takes the write lock at BEGIN, so a second would only poll for the lock in a
    worker thread, where a newcomer can overtake it; queued in the service instead, they go in turn."""
    return 1 if engine.dialect.name == "sqlite" else pool_size


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A transaction that only reads: on SQLite a snapshot that takes no write lock, so a reader polling the
    store (the MLLP listener's batch cutter) never makes a writer wait for it. Nothing written in it is kept."""
    # closed, not rolled back: what was read stays loaded (a rollback would expire it); the pool ends the
    # transaction when the connection goes back
    with Session(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False) as session:
        yield session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back (store unchanged) when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config() -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to `revision`; the service runs this at start, `crosswalk db upgrade` by hand.

    "heads": features add their tables in migrations of their own, each branching from the revision
    they build on, so several may be at head at once.
    """
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class SchemaNotCurrent(StoreError):
    """The store's schema is not the one this crosswalk expects: the user runs `crosswalk db upgrade`."""

    status, title = 503, "Store schema not current"


def check_schema(engine: Engine) -> None:
    """Refuse a store whose schema is not at head, with one line saying what to do; a brand-new, empty
    embedded (SQLite) store is created at head instead, so a new user needs no extra command.

    Cheap: one read of `alembic_version` (and of the table names when it is missing); the migration
    scripts' heads are read once per process.
    """
    with engine.connect() as connection:
        stored = frozenset(MigrationContext.configure(connection).get_current_heads())
        empty = not stored and not inspect(connection).get_table_names()
    heads, known = _script_revisions()
    if stored == heads:
        return
    where = f"store {display_url(engine.url)}"
    if empty and engine.dialect.name == "sqlite":
        upgrade(engine)
    elif empty:
        raise SchemaNotCurrent(f"{where} has no crosswalk schema yet: create it with `crosswalk db upgrade`")
    elif not stored:
        raise SchemaNotCurrent(f"{where} holds tables crosswalk did not create: set CROSSWALK_DATABASE_URL to another")
    elif stored - known:
        newer = ", ".join(sorted(stored - known))
        raise SchemaNotCurrent(f"{where} is at schema {newer}, newer than this crosswalk: upgrade crosswalk")
    else:
        raise SchemaNotCurrent(f"{where} has an older schema than this crosswalk: run `crosswalk db upgrade`")


@lru_cache(maxsize=1)
def _script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The migration scripts' heads, and every revision they know."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.get_heads()), frozenset(rev.revision for rev in script.walk_revisions())


def display_url(url) -> str:
    """The store URL as the user may see it: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)
