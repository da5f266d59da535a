"""`crosswalk train --release N`, `models list|promote`, `lineage ID`: the CLI contract (stand-in models)."""

from __future__ import annotations

import sys

import pytest
from sqlmodel import select

import service.engine
from service import audit
from service.settings import get_settings
from service.store.db import session_scope
from service.store.tables import Suggestion
from training import tracking


@pytest.fixture
def cli(store, tiny_icd, encoder, fake_fine_tuner, monkeypatch):
    """The real entry point, on the fixture's store, with the bundled model stood in by the HashingEncoder."""
    settings, engine, _ = store
    monkeypatch.setenv("CROSSWALK_HOME", str(settings.home))
    monkeypatch.setenv("CROSSWALK_DATABASE_URL", str(engine.url))
    get_settings.cache_clear()
    monkeypatch.setattr("service.engine.bundled_encoder", lambda s: encoder)
    fake_catalog = {
        "get": staticmethod(lambda n: tiny_icd),
        "stamp": staticmethod(lambda n: 0),
        "names": staticmethod(lambda: [tiny_icd.name]),
    }
    monkeypatch.setattr("service.engine.catalog", lambda s: type("C", (), fake_catalog)())
    monkeypatch.setattr("service.retraining.onnx_encoder_factory", lambda s: lambda model_dir: encoder)
    monkeypatch.setattr("service.retraining.OnnxEncoder", lambda **kwargs: encoder)
    monkeypatch.setattr("training.pipeline.fine_tune", fake_fine_tuner)
    service.engine.served_suggesters.cache_clear()

    def run(*args: str, code: int = 0, capsys=None) -> tuple[str, str]:
        from service.cli import main

        monkeypatch.setattr(sys, "argv", ["crosswalk", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        out = capsys.readouterr() if capsys else None
        assert (exited.value.code or 0) == code, out
        return out

    yield run, engine, settings
    service.engine.served_suggesters.cache_clear()


def test_bad_input_is_one_line_and_exit_2(cli, capsys):
    run, _, _ = cli
    _, err = run("models", "promote", code=2, capsys=capsys)
    assert (
        err.strip() == "crosswalk: error: no model registry yet: train a model first with `crosswalk train --release N`"
    )
    _, err = run("train", "--release", "9", code=2, capsys=capsys)
    assert err.strip().splitlines()[-1] == "crosswalk: error: project 'legacy dx' has no release 9"
    _, err = run("lineage", "424242", code=2, capsys=capsys)
    assert err.strip() == "crosswalk: error: no suggestion with id 424242"
    _, err = run("train", "--release", "1", "--margin", "2", code=2, capsys=capsys)
    assert "--margin 2.0: expected a fraction between 0 and 1" in err


def test_train_promote_and_trace_from_the_command_line(cli, capsys):
    run, engine, settings = cli
    out, _ = run("train", "--release", "1", capsys=capsys)
    assert "challenger v1" in out and "champion bundled" in out and "registered models:/crosswalk-tiny-icd/1" in out
    out, _ = run("models", "list", capsys=capsys)
    assert out.startswith("models:/crosswalk-tiny-icd/1  [challenger]  release 1/1")
    # Same model as the bundled stand-in: it cannot win by the margin, so the gate refuses it.
    out, err = run("models", "promote", code=1, capsys=capsys)
    assert "refused" in err and "below the margin" in err
    with session_scope(engine) as session:
        assert [e.action for e in audit.history(session) if e.entity.startswith("model_promotion:")] == [
            "model.promote_refused"
        ]
    out, _ = run("models", "promote", "--margin", "0", "--ece-tolerance", "0.5", capsys=capsys)
    assert "models:/crosswalk-tiny-icd/1 is now champion" in out
    assert tracking.Registry(settings.home).alias("crosswalk-tiny-icd", "champion").version == "1"
    with session_scope(engine) as session:
        first = session.exec(select(Suggestion.id).order_by(Suggestion.id)).first()
    out, _ = run("lineage", str(first), capsys=capsys)
    assert "bundled zero-shot model" in out  # made before any training: the chain ends at the model

    out, _ = run("project", "suggest", "--project", "legacy dx", "--top-k", "2", capsys=capsys)
    assert "models:/crosswalk-tiny-icd/1" in out  # the champion now serves, and batches carry its name
    with session_scope(engine) as session:
        latest = session.exec(select(Suggestion.id).order_by(Suggestion.id.desc())).first()
    out, _ = run("lineage", str(latest), capsys=capsys)
    assert "model    models:/crosswalk-tiny-icd/1  aliases: champion" in out
    assert "release  project 1 #1 by lead" in out and "matches" in out and "approvals in it: 57" in out
