"""UI fixtures: the review service's `Service` helper (tests/service/conftest.py) on SQLite, a project
with twelve lab codes and suggestions, and a TestClient logged in through the login form."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.items import SourceItem, Suggestion
from models.terminology import Concept, Terminology
from service.store.db import engine_for
from service.store.tables import Role
from tests.service.conftest import Service, local_webhooks  # noqa: F401  (a fixture for the UI tests too)

# Fifteen codes (the keyboard test reviews ten and skips one after two are approved); frequencies make the expected-value order checkable.
UI_CSV = b"""source_code,source_text,frequency,unit,domain
GLU,Glucose serum,900,mg/dL,chemistry
HBA1C,Hemoglobin A1c,450,%,chemistry
NA,Sodium serum,800,mmol/L,chemistry
K,Potassium serum,780,mmol/L,chemistry
UA,Urinalysis dipstick,120,,urinalysis
CREA,Creatinine serum,700,umol/L,chemistry
GLUP,Glucose plasma fasting,650,mg/dL,chemistry
NAU,Sodium urine spot,300,mmol/L,urinalysis
KU,Potassium urine,250,mmol/L,urinalysis
APP,Urine appearance,200,,urinalysis
HGB,Hemoglobin blood,600,g/dL,hematology
XYZ,Unknown legacy test,50,,
CL,Chloride serum,500,mmol/L,chemistry
BUN,Urea nitrogen serum,550,mg/dL,chemistry
ALB,Albumin serum,350,g/L,chemistry
"""


# A small LOINC-like terminology with a hierarchy, synonyms and the loader's attributes (six axes, example
# units, class, status), so pages show paths, matched synonyms, axes and unit checks.
def _loinc(component, prop, system, units, status="ACTIVE", scale="Qn", method=None) -> dict:
    return {
        "component": component,
        "property": prop,
        "time": "Pt",
        "system": system,
        "scale": scale,
        "method": method,
        "class": "CHEM" if system != "Urine" else "UA",
        "units": units,
        "status": status,
    }


def _lab(code, display, synonyms, parents, component, prop, system, units, **more) -> Concept:
    active = more.get("status", "ACTIVE") in ("ACTIVE", "TRIAL")
    return Concept(code, display, synonyms, parents, _loinc(component, prop, system, units, **more), active=active)


GROUPS = [Concept("LG-CHEM", "Chemistry"), Concept("LG-LYTES", "Electrolytes", parents=["LG-CHEM"])]
CONCEPTS = [
    _lab(
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        ["Glucose SerPl"],
        ["LG-CHEM"],
        "Glucose",
        "MCnc",
        "Ser/Plas",
        "mg/dL",
    ),
    _lab(
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        ["HbA1c"],
        ["LG-CHEM"],
        "Hemoglobin A1c/Hemoglobin.total",
        "MFr",
        "Bld",
        "%",
    ),
    _lab(
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        ["Na SerPl"],
        ["LG-LYTES"],
        "Sodium",
        "SCnc",
        "Ser/Plas",
        "mmol/L",
    ),
    _lab(
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        ["K SerPl", "Potassium serum"],
        ["LG-LYTES"],
        "Potassium",
        "SCnc",
        "Ser/Plas",
        "mmol/L",
    ),
    _lab("5767-9", "Appearance of Urine", ["Urine appearance"], [], "Appearance", "Aper", "Urine", None, scale="Nom"),
    _lab(
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        ["Creat SerPl"],
        ["LG-CHEM"],
        "Creatinine",
        "MCnc",
        "Ser/Plas",
        "mg/dL",
    ),
    _lab(
        "2075-0",
        "Chloride [Moles/volume] in Serum or Plasma",
        ["Cl SerPl"],
        ["LG-LYTES"],
        "Chloride",
        "SCnc",
        "Ser/Plas",
        "mmol/L",
    ),
    _lab(
        "3094-0",
        "Urea nitrogen [Mass/volume] in Serum or Plasma",
        ["BUN SerPl"],
        ["LG-CHEM"],
        "Urea nitrogen",
        "MCnc",
        "Ser/Plas",
        "mg/dL",
    ),
    _lab(
        "1751-7",
        "Albumin [Mass/volume] in Serum or Plasma",
        ["Albumin SerPl"],
        ["LG-CHEM"],
        "Albumin",
        "MCnc",
        "Ser/Plas",
        "g/dL",
    ),
    _lab(
        "41653-7",
        "Glucose [Mass/volume] in Capillary blood by Glucometer",
        ["Glucose BldC Glucomtr-mCnc"],
        ["LG-CHEM"],
        "Glucose",
        "MCnc",
        "BldC",
        "mg/dL",
        method="Glucometer",
    ),
    # LOINC keeps deprecated terms for old data: the model never ranks them, a search shows them when asked.
    _lab(
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        ["Glucose Bld"],
        ["LG-CHEM"],
        "Glucose",
        "MCnc",
        "Bld",
        "mg/dL",
        status="DEPRECATED",
    ),
]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class UiSuggester:
    """Word overlap against every string of a concept (display and synonyms): deterministic, instant.

    The lexical score is the share of query words matched, the 'semantic' one a Jaccard overlap,
    the fused score their mean; the evidence names the string that matched, as the real suggester does.
    """

    model_version = "fake-words@1"

    def __init__(self) -> None:
        self.terminology = Terminology("loinc", "test", "2.77", CONCEPTS + GROUPS)

    def suggest(
        self, items: Sequence[SourceItem], top_k: int = 10, where: dict | None = None
    ) -> list[list[Suggestion]]:
        return [self.search(item.text, top_k, where) for item in items]

    def search(self, text: str, top_k: int = 10, where: dict | None = None) -> list[Suggestion]:
        words = _words(text)
        active = [c for c in CONCEPTS if c.active]  # as the real suggester, which never ranks inactive concepts
        ranked = sorted(active, key=lambda c: (-self._score(words, c)[0], c.code))[:top_k]
        return [self._suggestion(words, concept, rank) for rank, concept in enumerate(ranked, start=1)]

    def _suggestion(self, words: set[str], concept: Concept, rank: int) -> Suggestion:
        score, lexical, semantic, matched = self._score(words, concept)
        evidence = {
            "lexical": lexical,
            "semantic": semantic,
            "matched_text": matched,
            "matched_synonym": matched != concept.display,
        }
        return Suggestion(concept.code, concept.display, score, rank, evidence)

    @staticmethod
    def _score(words: set[str], concept: Concept) -> tuple[float, float, float, str]:
        best = (0.0, 0.0, concept.display)
        for text in concept.texts():
            other = _words(text)
            lexical = len(words & other) / (len(words) or 1)
            semantic = len(words & other) / (len(words | other) or 1)
            best = max(best, (lexical, semantic, text), key=lambda b: b[0] + b[1])
        return round((best[0] + best[1]) / 2, 4), round(best[0], 4), round(best[1], 4), best[2]


@pytest.fixture
def ui_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    return Service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, UiSuggester(), monkeypatch)


@pytest.fixture
def project(ui_service: Service) -> int:
    project = ui_service.project()
    assert ui_service.import_csv(project, UI_CSV).status_code == 200
    ui_service.suggest(project)
    return project


def login(service: Service, role: Role | str) -> TestClient:
    """A fresh client that logged in through the form, as a browser would."""
    client = TestClient(service.app, base_url="http://testserver")
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    token = service.tokens[Role(role)] if role in set(Role) else role
    response = client.post("/ui/login", data={"token": token, "csrf": csrf, "next": "/ui/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# -- a monitored feed with alerts (for the ops pages) ------------------------------------------------
MEASUREMENTS = Path(__file__).resolve().parents[1].parent / "data" / "samples" / "monitoring" / "measurements.csv"
WEIGHT = "29463-7"


def feed_batches():
    """The Synthea lab sample split into a reference and three batches (segmented by site): a clean one,
    then site south sends body weight in pounds (a critical unit alert), then site north stops sending
    half its values. Returns (reference, [(file name, batch), ...]) as DataFrames."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(MEASUREMENTS)
    order = np.random.default_rng(0).permutation(len(frame))
    reference, current = frame.iloc[order[:800]].reset_index(drop=True), frame.iloc[order[800:]].reset_index(drop=True)
    pounds = current.copy()
    rows = (pounds.measurement_source_value == WEIGHT) & (pounds.site == "south")
    pounds.loc[rows, "value_as_number"] *= 2.2046
    pounds.loc[rows, "unit_source_value"] = "[lb_av]"
    gaps = pounds.copy()
    north = gaps.index[gaps.site == "north"]
    gaps.loc[north[: len(north) // 2], "value_as_number"] = np.nan
    return reference, [("monday.csv", current), ("tuesday.csv", pounds), ("wednesday.csv", gaps)]


def seed_feed(service: Service) -> dict:
    """A feed of `feed_batches()`: the reference, then its three batches."""
    reference, batches = feed_batches()
    form = {"name": "st-mary-labs", "description": "St Mary LIS results", "segment_columns": ["site"]}
    created = service.call("POST", "/feeds", Role.ops, data=form, files={"file": ("reference.csv", _csv(reference))})
    assert created.status_code == 201, created.text
    for name, batch in batches:
        posted = service.call("POST", "/feeds/st-mary-labs/batches", Role.ops, files={"file": (name, _csv(batch))})
        assert posted.status_code == 201, posted.text
    return created.json()


def _csv(frame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: a CROSSWALK_HOME whose store holds the project (imported, suggested) and the seeded
    feed (Evidently reports take seconds). Tests copy it, so each still starts from the same state."""
    home = tmp_path_factory.mktemp("ui-seeded")
    with pytest.MonkeyPatch.context() as patch:
        service = Service(f"sqlite:///{home / 'store.db'}", home, UiSuggester(), patch)
        project = service.project()
        assert service.import_csv(project, UI_CSV).status_code == 200
        service.suggest(project)
        seed_feed(service)
        engine_for(service.url).dispose()  # closes SQLite's connections: the WAL is folded into store.db
    return home


@pytest.fixture
def seeded(seeded_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Service, int]:
    """A copy of the seeded home (feed files included) with a fresh app and tokens on it; project id."""
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    return Service(f"sqlite:///{home / 'store.db'}", home, UiSuggester(), monkeypatch), 1


# -- the browser for the end-to-end tests ----------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `playwright install` is never run
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_or_skip(chromium: Path = CHROMIUM):
    """playwright's sync API, or a skip saying what is missing; under CROSSWALK_REQUIRE_E2E=1 (CI) a failure."""
    reason = None
    try:
        from playwright import sync_api
    except ImportError:
        reason = "the playwright package is not installed (pip install playwright)"
    if reason is None and not chromium.exists():
        reason = f"no {chromium} (apt-get install -y chromium)"
    if reason is None:
        return sync_api
    if os.environ.get("CROSSWALK_REQUIRE_E2E") == "1":
        pytest.fail(f"CROSSWALK_REQUIRE_E2E=1 but {reason}")
    pytest.skip(f"end-to-end UI tests need a browser: {reason}")


@pytest.fixture
def browser() -> Iterator:
    """Headless Chromium through playwright (or a skip, see `browser_or_skip`)."""
    sync_api = browser_or_skip()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def live_server(app) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 (as `crosswalk serve`), on a free port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
