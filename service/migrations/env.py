"""Alembic environment: runs on the connection crosswalk hands it, else on the configured store."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import service.store  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from service.settings import get_settings
    from service.store.db import make_engine

    with make_engine(get_settings().database_url).begin() as connection:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `crosswalk db upgrade`")
run_migrations_online()
