"""Retraining fixtures: approved mappings onto the tiny ICD terminology, stand-in encoders and fine-tuner.

The pipeline's plumbing (splits, mining, fusion, calibration, MLflow, the gate, the store) is tested
with the HashingEncoder of tests/conftest.py and a fine-tuner that copies files; one slow test runs
a real sentence-transformers fine-tune of a few steps.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from models.suggest import Suggester
from service import crud, crud_imports, crud_releases, decisions
from service.settings import Settings, get_settings
from service.store.db import engine_for, session_scope, upgrade
from service.store.tables import DecisionCreate, ProjectCreate, SuggestRequest
from training.finetune import FineTuneResult
from training.sets import ApprovedMapping

# Ways a source system words a concept: what a team approves again and again.
VARIANTS = ("{}", "{} nos", "history of {}", "{} unspecified", "{} (finding)", "known {}", "{} disorder", "chronic {}")


def approved_mappings(terminology) -> list[ApprovedMapping]:
    out = []
    for concept in terminology:
        if not concept.active or not concept.attributes.get("billable"):
            continue
        for index, variant in enumerate(VARIANTS):
            out.append(
                ApprovedMapping(f"{concept.code}-{index}", variant.format(concept.display.lower()), (concept.code,))
            )
    return out


@pytest.fixture
def mappings(tiny_icd) -> list[ApprovedMapping]:
    return approved_mappings(tiny_icd)


class RandomEncoder:
    """Deterministic noise: every text a random unit vector. A deliberately useless semantic matcher."""

    model_id = "random-test-encoder@1"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        out = (
            np.stack(
                [np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).normal(size=64) for t in texts]
            ).astype(np.float32)
            if texts
            else np.zeros((0, 64), np.float32)
        )
        return out / np.linalg.norm(out, axis=1, keepdims=True) if len(out) else out


class FakeFineTuner:
    """Writes a stand-in model folder and remembers what it was asked to train on."""

    def __init__(self) -> None:
        self.train, self.validation = [], []

    def __call__(self, base_dir: Path, out_dir: Path, train, validation, config, progress=True) -> FineTuneResult:
        self.train, self.validation = list(train), list(validation)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "model.safetensors").write_bytes(b"stand-in weights")
        return FineTuneResult(out_dir, len(train), 3, 2, 1.0, 0.5, False, 0.01, "cpu")


@pytest.fixture
def fake_fine_tuner() -> FakeFineTuner:
    return FakeFineTuner()


def backwards_fusion():
    """The shipped fusion with its weights negated: ranks the worst candidate first, deliberately."""
    from models.fusion import LogisticFusion, default_fusion

    shipped = default_fusion().first  # the linear stage of the shipped re-ranked fusion
    return LogisticFusion(-shipped.coef, -shipped.intercept, "backwards", shipped.features)


@pytest.fixture
def store(tmp_path, tiny_icd, encoder, mappings, monkeypatch):
    """A project onto tiny-icd with every mapping approved (one rejected first) and released as release 1."""
    monkeypatch.delenv("CROSSWALK_MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    settings = Settings(home=tmp_path / "home")
    engine = engine_for(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    suggester = Suggester(tiny_icd, encoder)
    # One source whose words point at a sibling: the reviewer rejects the top suggestion, then remaps.
    tricky = ApprovedMapping("DM-X", "type 2 diabetes mellitus with hyperglycemia", ("E11.9",))
    mappings.append(tricky)
    rows = [crud_imports.ImportRow(m.source_code, m.source_text) for m in mappings]
    with session_scope(engine) as session:
        project = crud.create_project(
            session, ProjectCreate(name="legacy dx", source_system="dx", target_terminology="tiny-icd"), "setup"
        )
        crud_imports.import_items(session, project, rows, "setup")
        crud_imports.generate_suggestions(session, project, suggester, SuggestRequest(top_k=3), "setup")
        item = crud.get_item(session, project, tricky.source_code)
        decisions.decide(
            session, project, tricky.source_code, DecisionCreate(action="reject"), "rev", item.version, tiny_icd
        )
        for m in mappings:
            item = crud.get_item(session, project, m.source_code)
            decision = DecisionCreate(action="remap", target_code=m.targets[0])
            decisions.decide(session, project, m.source_code, decision, "rev", item.version, tiny_icd)
        crud_releases.create_release(session, project, "lead")
        project_id = project.id
    return settings, engine, project_id
