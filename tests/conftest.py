"""Shared fixtures: a tiny terminology and a fast, deterministic stand-in for the text encoder."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from models.terminology import Concept, Terminology
from service.settings import get_settings

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


class HashingEncoder:
    """Bag-of-words hashed into 256 dimensions: similar words -> similar vectors, in microseconds.

    Stands in for MiniLM wherever a test checks plumbing rather than language understanding.
    """

    model_id = "hashing-test-encoder@1"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture(autouse=True)
def settings_per_test():
    """The service reads its environment once per process: each test reads the one it sets up."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture
def tiny_icd() -> Terminology:
    """A slice of ICD-10-CM as plain data: a category, its billable children, one synonym."""
    concepts = [
        Concept("E11", "Type 2 diabetes mellitus", ["diabetes NOS"], [], {"billable": False}),
        Concept("E11.9", "Type 2 diabetes mellitus without complications", [], ["E11"], {"billable": True}),
        Concept("E11.65", "Type 2 diabetes mellitus with hyperglycemia", [], ["E11"], {"billable": True}),
        Concept("I10", "Essential (primary) hypertension", ["high blood pressure"], [], {"billable": True}),
        Concept("J18.9", "Pneumonia, unspecified organism", [], ["J18"], {"billable": True}),
        Concept("A01.4", "Paratyphoid fever, unspecified", [], ["A01"], {"billable": True}),
        Concept(
            "C34.90",
            "Malignant neoplasm of unspecified part of unspecified bronchus or lung",
            [],
            ["C34.9"],
            {"billable": True},
        ),
        Concept("N39.0", "Urinary tract infection, site not specified", [], ["N39"], {"billable": True}),
        Concept("Z99.9", "Retired test code", [], [], {"billable": True}, active=False),
    ]
    return Terminology("tiny-icd", "test", "1", concepts)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The CLI's environment: data directory, embedded store and audit actor in a fresh folder."""
    from service.settings import get_settings

    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path))
    monkeypatch.setenv("CROSSWALK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CROSSWALK_ACTOR", "cli-tester")
    get_settings.cache_clear()
    return tmp_path


@pytest.fixture
def dask_in_threads(monkeypatch):
    """`local:N` clusters in threads of this process: the same scheduler, without process start-up."""
    import service.cluster

    monkeypatch.setattr(service.cluster, "LOCAL_PROCESSES", False)
