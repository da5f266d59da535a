"""Settings read once, and migrations run once: `serve` and `crosswalk db upgrade` migrate; every other
command only checks the schema (creating a brand-new embedded store), and `create_app` never migrates."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from service.retraining import existing_registry, open_registry
from service.settings import Settings, get_settings
from service.store.db import SchemaNotCurrent, check_schema, engine_for, upgrade
from service.web.app import create_app
from tests.service.conftest import crosswalk


def versions(url: str) -> set[str]:
    with engine_for(url).connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def test_a_new_user_needs_no_extra_command(env: Path, monkeypatch, capsys):
    code, out, _ = crosswalk(monkeypatch, capsys, "project", "list")
    assert code == 0 and "name" in out
    assert versions(get_settings().database_url)  # the brand-new embedded store was created at head


def test_a_store_behind_head_is_refused_until_db_upgrade(env: Path, monkeypatch, capsys):
    url = get_settings().database_url
    upgrade(engine_for(url), "0001")  # as an older crosswalk left it
    code, out, err = crosswalk(monkeypatch, capsys, "project", "list")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "older schema" in err and "`crosswalk db upgrade`" in err
    assert versions(url) == {"0001"}  # refused, not migrated behind the user's back

    assert crosswalk(monkeypatch, capsys, "db", "upgrade")[0] == 0
    assert crosswalk(monkeypatch, capsys, "project", "list")[0] == 0


def test_stores_it_cannot_read_are_refused_with_what_to_do(tmp_path: Path):
    foreign = engine_for(f"sqlite:///{tmp_path / 'other.db'}")
    with foreign.begin() as connection:
        connection.execute(text("CREATE TABLE patients (id INTEGER)"))
    with pytest.raises(SchemaNotCurrent, match="did not create"):
        check_schema(foreign)

    newer = engine_for(f"sqlite:///{tmp_path / 'newer.db'}")
    upgrade(newer)
    with newer.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version VALUES ('9999_future')"))
    with pytest.raises(SchemaNotCurrent, match="9999_future, newer than this crosswalk"):
        check_schema(newer)


def test_create_app_does_not_migrate(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    create_app(Settings(home=tmp_path, database_url=url), suggester_factory=lambda name: None)
    with engine_for(url).connect() as connection:
        assert inspect(connection).get_table_names() == []


def test_settings_are_read_once_and_hold_every_setting(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("CROSSWALK_ACTOR", "ops-1")
    monkeypatch.setenv("CROSSWALK_MLFLOW_TRACKING_URI", "")  # empty: the default, as before
    first = get_settings()
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "b"))
    assert get_settings() is first and first.home == tmp_path / "a"
    assert first.database_url == f"sqlite:///{tmp_path / 'a' / 'crosswalk.db'}" and first.actor == "ops-1"
    assert first.mlflow_tracking_uri is None and first.terminologies_dir == tmp_path / "a" / "terminologies"
    get_settings.cache_clear()
    assert get_settings().home == tmp_path / "b"
    assert hash(Settings(home=tmp_path)) == hash(Settings(home=tmp_path))  # keys the per-settings caches


def test_the_tracking_uri_reaches_the_registry_from_the_settings(tmp_path: Path):
    embedded = Settings(home=tmp_path)
    assert existing_registry(embedded) is None  # reading creates no embedded registry
    assert open_registry(embedded).uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    elsewhere = f"sqlite:///{tmp_path / 'server.db'}"
    registry = existing_registry(Settings(home=tmp_path, mlflow_tracking_uri=elsewhere))
    assert registry is not None and registry.uri == elsewhere
