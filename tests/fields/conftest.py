"""Field-project fixtures: the review service on the real serving path (target model catalog, field
suggester) with the test encoder, on SQLite and, where the suite has one, PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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


@pytest.fixture
def fields_service(store_url, tmp_path, monkeypatch, encoder) -> Service:
    """The review service on the real serving path (catalog + target models), with the test encoder."""
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()
    running = Service(store_url, tmp_path, None, monkeypatch)
    running.app = create_app(running.settings)
    running.client = TestClient(running.app)
    yield running
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()
