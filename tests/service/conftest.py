"""Review-service fixtures: a fake suggester, a fresh store per test (SQLite, and PostgreSQL when
CROSSWALK_TEST_POSTGRES_URL is set), an app on it and one API token per role.

`make test` points CROSSWALK_TEST_POSTGRES_URL at the local server; where none answers the PostgreSQL
cases skip, unless CROSSWALK_REQUIRE_POSTGRES=1 (CI), where they fail: CI never passes by skipping them.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from models.items import SourceItem, Suggestion
from models.terminology import Concept, Terminology
from service import crud
from service.settings import Settings, get_settings
from service.store.db import engine_for, session_scope, upgrade
from service.store.tables import Role
from service.web.app import create_app

PG_URL = os.environ.get("CROSSWALK_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("CROSSWALK_REQUIRE_POSTGRES") == "1"
LAB_CSV = b"""source_code,source_text,frequency,unit
GLU,Glucose serum,900,mg/dL
HBA1C,Hemoglobin A1c,450,%
NA,Sodium serum,800,mmol/L
K,Potassium serum,780,mmol/L
UA,Urinalysis dipstick,120,
"""


class FakeSuggester:
    """Ranks a tiny lab terminology by shared words: deterministic, instant, no model."""

    model_version = "fake-words@1"

    def __init__(self) -> None:
        concepts = [
            Concept("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
            Concept("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
            Concept("2951-2", "Sodium [Moles/volume] in Serum or Plasma"),
            Concept("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
            Concept("5767-9", "Appearance of Urine", attributes={"class": "UA"}),
            Concept("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
        ]
        self.terminology = Terminology("loinc", "test", "2.77", concepts)
        self.calls = 0

    def suggest(
        self, items: Sequence[SourceItem], top_k: int = 10, where: dict | None = None
    ) -> list[list[Suggestion]]:
        self.calls += 1
        return [self.search(item.text, top_k, where) for item in items]

    def search(self, text: str, top_k: int = 10, where: dict | None = None) -> list[Suggestion]:
        words = set(re.findall(r"[a-z0-9]+", text.lower()))
        allowed = [c for c in self.terminology if all(c.attributes.get(k) == v for k, v in (where or {}).items())]
        if not allowed:  # as models.suggest.Suggester does
            raise ValueError(f"no concept of {self.terminology.name} matches the filter {where}")
        scored = []
        for concept in allowed:
            shared = words & set(re.findall(r"[a-z0-9]+", concept.display.lower()))
            scored.append((len(shared) / (len(words) or 1), concept))
        scored.sort(key=lambda pair: (-pair[0], pair[1].code))
        return [
            Suggestion(
                c.code, c.display, round(score, 4), rank, {"lexical": score, "semantic": 0.5, "matched_text": c.display}
            )
            for rank, (score, c) in enumerate(scored[:top_k], start=1)
        ]


def crosswalk(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point as a user's shell runs it: exit status, stdout, stderr."""
    from service.cli.app import main

    monkeypatch.setattr("sys.argv", ["crosswalk", *args])
    umask = os.umask(0o077)  # main() sets the CLI's private umask: the test process gets its own back
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        os.umask(umask)
    out = capsys.readouterr()
    return exited.value.code or 0, out.out, out.err


@pytest.fixture
def suggester() -> FakeSuggester:
    return FakeSuggester()


def _pg_schema_url(base: str) -> Iterator[str]:
    """A fresh schema per test, selected by search_path, dropped afterwards."""
    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path) -> Iterator[str]:
    """The store URL: SQLite always; PostgreSQL when CROSSWALK_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from postgres_url()


def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema's URL, or a skip (a failure under CROSSWALK_REQUIRE_POSTGRES=1)."""
    problem = _pg_unavailable()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CROSSWALK_REQUIRE_POSTGRES=1) but {problem}")
        pytest.skip(problem)
    yield from _pg_schema_url(PG_URL)


@functools.cache
def _pg_unavailable() -> str | None:
    if not PG_URL:
        return "set CROSSWALK_TEST_POSTGRES_URL to run the PostgreSQL tests"
    try:
        with create_engine(PG_URL).connect():
            return None
    except Exception as error:  # noqa: BLE001  (any failure to connect means: no server here)
        return f"no PostgreSQL at CROSSWALK_TEST_POSTGRES_URL ({type(error).__name__})"


class Service:
    """A running app on a store, with a token per role and helpers for the common calls."""

    def __init__(self, url: str, home: Path, suggester: FakeSuggester, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("CROSSWALK_DATABASE_URL", url)
        monkeypatch.setenv("CROSSWALK_HOME", str(home))
        get_settings.cache_clear()
        self.url, self.settings, self.suggester = url, Settings(home=home, database_url=url), suggester
        upgrade(engine_for(url))  # the app never migrates: `serve` and `crosswalk db upgrade` do
        self.app = create_app(self.settings, suggester_factory=lambda name: suggester)
        self.engine = engine_for(url)
        self.tokens = {role: self.make_token(role, f"{role.value}-1") for role in Role}
        self.client = TestClient(self.app)

    def make_token(self, role: Role, name: str) -> str:
        with session_scope(self.engine) as session:
            return crud.create_token(session, name, role, "test-setup")[1]

    def auth(self, role: Role | str) -> dict[str, str]:
        token = self.tokens[Role(role)] if role in set(Role) else role  # a role, or a raw token
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, role: Role | str = Role.admin, **kwargs):
        headers = {**self.auth(role), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def project(self, four_eyes: bool = False, name: str = "St Mary LIS lab") -> int:
        body = {
            "name": name,
            "source_system": "St Mary LIS local lab codes",
            "target_terminology": "loinc",
            "four_eyes": four_eyes,
        }
        response = self.call("POST", "/projects", Role.mapper, json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def import_csv(self, project: int, data: bytes = LAB_CSV, fmt: str = "csv", role: Role = Role.mapper):
        files = {"file": ("codes.csv", data, "text/csv")}
        return self.call("POST", f"/projects/{project}/imports?format={fmt}", role, files=files)

    def suggest(self, project: int):
        response = self.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"top_k": 3})
        assert response.status_code == 200, response.text
        return response.json()

    def item(self, project: int, code: str) -> dict:
        response = self.call("GET", f"/projects/{project}/items/{code}", Role.viewer)
        assert response.status_code == 200, response.text
        return response.json()

    def decide(self, project: int, code: str, role: Role | str = Role.mapper, version: int | None = None, **body):
        version = self.item(project, code)["version"] if version is None else version
        return self.call(
            "POST", f"/projects/{project}/items/{code}/decisions", role, json=body, headers={"If-Match": f'"{version}"'}
        )

    def ready_project(self, four_eyes: bool = False) -> int:
        project = self.project(four_eyes)
        assert self.import_csv(project).status_code == 200
        self.suggest(project)
        return project


@pytest.fixture
def service(db_url: str, tmp_path: Path, suggester: FakeSuggester, monkeypatch: pytest.MonkeyPatch) -> Service:
    return Service(db_url, tmp_path, suggester, monkeypatch)


@pytest.fixture
def sqlite_service(
    sqlite_url: str, tmp_path: Path, suggester: FakeSuggester, monkeypatch: pytest.MonkeyPatch
) -> Service:
    return Service(sqlite_url, tmp_path, suggester, monkeypatch)


WEBHOOK_SECRET = "k7Qm2VxR9pLs4TnW8yZc1BdF6hJa3GeU5oIu0NbXrSt"  # 43 characters: secrets.token_urlsafe(32)


@pytest.fixture
def local_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks may post to a receiver on 127.0.0.1 over plain http (an admin's explicit allowance);
    every other private or loopback address stays refused."""
    monkeypatch.setenv("CROSSWALK_WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("CROSSWALK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
