"""Release -> challenger -> gate -> champion -> served -> lineage, on a real store and an embedded MLflow.

Encoders are stand-ins (tests/conftest.py's HashingEncoder, a RandomEncoder that knows nothing) and
the fine-tune copies files: what is tested is the plumbing and the gate, not language understanding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from models.suggest import Suggester
from service import audit, crud, crud_imports, retraining
from service.store.db import session_scope
from service.store.registry import ModelPromotion
from service.store.tables import Role, Suggestion, SuggestRequest
from service.web.app import create_app
from training import tracking
from training.finetune import FineTuneConfig
from training.pipeline import TrainConfig
from training.sets import split_by_code


def _train(store, base, fine_tuner, encoder_factory, margin=0.01):
    settings, engine, project_id = store
    from training.gate import GatePolicy

    return retraining.train_release(
        settings,
        engine,
        str(project_id),
        1,
        base,
        None,
        TrainConfig(FineTuneConfig(max_pairs=50)),
        GatePolicy(margin=margin),
        encoder_factory=encoder_factory,
        base_model_dir=Path("unused"),
        progress=False,
        fine_tuner=fine_tuner,
    )


def test_a_release_becomes_training_data_with_reviewer_negatives(store, mappings):
    _, engine, project_id = store
    with session_scope(engine) as session:
        found = retraining.release_mappings(session, crud.get_project(session, project_id), 1)
    assert {(m.source_code, m.targets) for m in found} == {(m.source_code, m.targets) for m in mappings}
    tricky = next(m for m in found if m.source_code == "DM-X")
    assert tricky.negatives[0] == "E11.65"  # the top suggestion, rejected; then what ranked above E11.9
    assert all(not set(m.negatives) & set(m.targets) for m in found)


def test_a_worse_challenger_is_refused_and_the_refusal_is_audited(
    store, tiny_icd, encoder, fake_fine_tuner, monkeypatch
):
    from tests.training.conftest import RandomEncoder, backwards_fusion

    settings, engine, _ = store
    base = Suggester(tiny_icd, encoder)  # the bundled model stand-in: knows the words
    # Deliberately worse: an encoder that knows nothing and a fusion that ranks backwards.
    monkeypatch.setattr("training.pipeline.fit_fusion", lambda *args, **kwargs: (backwards_fusion(), {}))
    report = _train(store, base, fake_fine_tuner, lambda model_dir: RandomEncoder())
    assert report.challenger["mrr@10"] < report.champion["mrr@10"]  # deliberately worse
    assert not report.decision.promote and report.champion_label == "bundled"
    registry = tracking.Registry(settings.home)
    name = tracking.registered_name("tiny-icd")
    assert registry.alias(name, tracking.CHALLENGER).version == report.version
    run = registry.run(report.run_id)
    assert run.data.params["data_sha256"] and run.data.params["release_number"] == "1"
    assert {"acc_at_1", "acc_at_10", "mrr_at_10", "ece", "champion_acc_at_1", "latency_p95_ms"} <= set(run.data.metrics)

    with session_scope(engine) as session:
        row, decision = retraining.promote(session, registry, "tiny-icd", "ml-lead")
    assert not decision.promote and not row.promoted
    assert registry.alias(name, tracking.CHAMPION) is None  # champion unchanged: still the bundled model
    with session_scope(engine) as session:
        events = audit.history(session, entity=f"model_promotion:{row.id}")
        assert [e.action for e in events] == ["model.promote_refused"]
        assert audit.verify(session).ok


def test_a_better_challenger_is_promoted_served_on_reload_and_traced_to_its_release(
    store, tiny_icd, encoder, fake_fine_tuner, monkeypatch, mappings
):
    from tests.training.conftest import RandomEncoder, backwards_fusion

    settings, engine, project_id = store
    base = Suggester(tiny_icd, RandomEncoder(), fusion=backwards_fusion())  # a zero-shot model that is badly wrong
    report = _train(store, base, fake_fine_tuner, lambda model_dir: encoder)
    assert report.decision.promote, report.decision.reasons
    registry = tracking.Registry(settings.home)
    with session_scope(engine) as session:
        row, decision = retraining.promote(session, registry, "tiny-icd", "ml-lead")
    name = tracking.registered_name("tiny-icd")
    assert decision.promote and registry.alias(name, tracking.CHAMPION).version == report.version

    # The service serves the champion: the registered weights through the ONNX encoder (stood in here).
    monkeypatch.setattr(retraining, "OnnxEncoder", lambda **kwargs: encoder)
    fake_catalog = {
        "get": staticmethod(lambda n: tiny_icd),
        "stamp": staticmethod(lambda n: 0),
        "names": staticmethod(lambda: [tiny_icd.name]),
    }
    monkeypatch.setattr("service.engine.catalog", lambda s: type("C", (), fake_catalog)())
    app = create_app(settings.model_copy(update={"database_url": str(engine.url)}))
    served = app.state.suggester_factory("tiny-icd")
    assert served.model_version == f"models:/{name}/{report.version}"
    # ... with the approved history it was trained on (train + fit codes, never the held-out ones)
    assert served.history is not None and served.history_vectors().shape[0] == len(served.history)
    heldout = {m.source_text for m in split_by_code(mappings).heldout}
    assert 0 < len(served.history) < len(mappings) and not heldout & set(served.history.texts)
    with session_scope(engine) as session:
        token = crud.create_token(session, "ml-1", Role.ml, "setup")[1]
        viewer = crud.create_token(session, "viewer-1", Role.viewer, "setup")[1]
        project = crud.get_project(session, project_id)
        crud_imports.generate_suggestions(session, project, served, SuggestRequest(top_k=2), "svc")
        suggestion_id = session.exec(select(Suggestion.id).order_by(Suggestion.id.desc())).first()
    client = TestClient(app)
    assert client.post("/models/reload", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    reloaded = client.post("/models/reload", headers={"Authorization": f"Bearer {token}"})
    assert reloaded.status_code == 200 and reloaded.json()["served"] == {"tiny-icd": served.model_version}
    assert app.state.suggester_factory("tiny-icd") is not served  # swapped for a fresh build

    chain = client.get(f"/suggestions/{suggestion_id}/lineage", headers={"Authorization": f"Bearer {viewer}"})
    assert chain.status_code == 200, chain.text
    body = chain.json()
    assert body["model"]["name"] == name and body["model"]["version"] == report.version
    assert body["model"]["aliases"] == ["champion"] and body["model"]["promotions"][0]["promoted"] is True
    assert body["run"]["run_id"] == report.run_id
    assert body["release"]["number"] == 1 and body["release"]["data_sha256"] == body["release"]["data_sha256_now"]
    assert {a["source_code"] for a in body["approvals"]} == {m.source_code for m in mappings}
    assert client.get("/suggestions/999999/lineage", headers={"Authorization": f"Bearer {viewer}"}).status_code == 404
    listed = client.get("/models", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert [(v["version"], v["aliases"]) for v in listed] == [(report.version, ["champion"])]


def test_training_refuses_a_missing_release_and_one_too_small_to_hold_out(
    store, tiny_icd, encoder, fake_fine_tuner, mappings
):
    from service.store.errors import Invalid, NotFound

    settings, engine, project_id = store
    with pytest.raises(NotFound, match="has no release 7"):
        retraining.train_release(
            settings,
            engine,
            str(project_id),
            7,
            Suggester(tiny_icd, encoder),
            None,
            encoder_factory=lambda d: encoder,
            base_model_dir=Path("unused"),
            progress=False,
            fine_tuner=fake_fine_tuner,
        )
    too_small = [m for m in mappings if not split_by_code([m]).heldout][:3]
    with pytest.raises(Invalid, match="has 3 approved mappings: .* and 0 held out"):
        retraining._check_split(split_by_code(too_small), "legacy dx", 1, 3)
    assert not tracking.configured(settings.home)  # nothing was logged
    with session_scope(engine) as session:
        assert session.exec(select(ModelPromotion)).first() is None
