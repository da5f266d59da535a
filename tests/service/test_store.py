"""The store's schema: the Alembic migration creates exactly the tables the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from service.store.db import alembic_config, engine_for, upgrade


def migrated(url: str):
    engine = engine_for(url)
    upgrade(engine)
    return engine


TABLES = {
    "project",
    "source_item",
    "suggestion_batch",
    "suggestion",
    "release",
    "release_entry",
    "api_token",
    "audit_event",
}


def test_migration_creates_the_models_tables(db_url):
    engine = migrated(db_url)
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names()) - {"alembic_version"}
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert TABLES <= names
    assert names == set(SQLModel.metadata.tables)
    assert differences == []


def test_upgrade_is_idempotent_and_at_head(sqlite_url):
    engine = migrated(sqlite_url)
    migrated(sqlite_url)  # a second start must not fail or re-create anything
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    assert current == set(ScriptDirectory.from_config(alembic_config()).get_heads())
