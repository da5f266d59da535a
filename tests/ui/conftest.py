"""UI fixtures: the review service's `Service` helper (tests/service/conftest.py) on SQLite, a project
with twelve lab codes and suggestions, and a TestClient logged in through the login form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.store.tables import Role
from tests.service.conftest import FakeSuggester, Service

# Twelve codes (the keyboard test reviews ten); frequencies make the expected-value order checkable.
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
"""


@pytest.fixture
def ui_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    return Service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, FakeSuggester(), monkeypatch)


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
