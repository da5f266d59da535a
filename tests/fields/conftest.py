"""Field-project fixtures: the review service on the real serving path (target model catalog, field
suggester) with the test encoder, on SQLite and, where the suite has one, PostgreSQL; a PostgreSQL
database to read a source from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import service.engine
from service.web.app import create_app
from tests.service.conftest import BACKENDS, Service, postgres_url


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """SQLite always; PostgreSQL when CROSSWALK_TEST_POSTGRES_URL is set (as the review-service tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from postgres_url()


@contextmanager
def serving_fields(url: str, home: Path, monkeypatch: pytest.MonkeyPatch, encoder) -> Iterator[Service]:
    """The review service on the real serving path (catalog + target models), with the test encoder."""
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()
    running = Service(url, home, None, monkeypatch)
    running.app = create_app(running.settings)
    running.client = TestClient(running.app)
    try:
        yield running
    finally:
        service.engine.served_suggesters.cache_clear()
        service.engine.terminologies.cache_clear()


@pytest.fixture
def fields_service(store_url, tmp_path, monkeypatch, encoder) -> Iterator[Service]:
    with serving_fields(store_url, tmp_path, monkeypatch, encoder) as running:
        yield running


@pytest.fixture
def lab_database() -> Iterator[str]:
    """A PostgreSQL schema's URL holding `lab_result` (a key, a commented unit column, two rows)."""
    for url in postgres_url():
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE lab_result (result_id integer PRIMARY KEY, uom varchar(20))"))
            connection.execute(text("COMMENT ON COLUMN lab_result.uom IS 'Unit of the result'"))
            connection.execute(text("INSERT INTO lab_result VALUES (1, 'mg/dL'), (2, 'mmol/L')"))
        engine.dispose()
        yield url
