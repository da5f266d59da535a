"""Retraining a field project: approved field mappings -> a field model -> the gate -> served (stand-in encoder).

The clinic extract of tests/fields/data stands in for a team's approved field mappings onto OMOP
CDM 5.4; the HashingEncoder stands in for MiniLM, so what is tested is what the approvals teach
(the team's tables go where its other columns went) and the plumbing, not language understanding.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from sqlmodel import select

import service.engine
from ingest.schema import SourceColumn, SourceSchema
from models.fields.serving import FieldTerminologySuggester, as_terminology, source_items
from models.fields.suggest import FieldSuggester
from models.fields.targets import load_omop
from models.items import SourceItem
from service import audit, crud, crud_imports, crud_releases, decisions, retraining
from service.settings import Settings, get_settings
from service.store.db import engine_for, session_scope, upgrade
from service.store.registry import ModelPromotion
from service.store.tables import DecisionCreate, ProjectCreate, SuggestRequest
from training import tracking
from training.sets import is_test_code

CLINIC = Path(__file__).resolve().parents[1] / "fields" / "data" / "clinic_omop.csv"
TARGET = "omop-cdm-5.4"
NAME = tracking.registered_name(TARGET)


def clinic_extract() -> list[tuple[SourceColumn, str]]:
    """The clinic extract's columns, each with the first of its true OMOP targets (what a reviewer approved)."""
    rows = list(csv.DictReader(CLINIC.open(encoding="utf-8")))
    keys = ("table", "column", "description", "type", "table_description")
    return [(SourceColumn(**{k: r[k] for k in keys}), r["targets"].split("|")[0]) for r in rows]


def bundled(encoder) -> FieldTerminologySuggester:
    model = load_omop("5.4")
    return FieldTerminologySuggester(FieldSuggester(encoder).fit(model), model)


def make_store(tmp_path, encoder, approvals: int | None = None):
    """A field project onto OMOP CDM 5.4 with the clinic extract imported, suggested, approved and released."""
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'store.db'}")
    engine = engine_for(settings.database_url)
    upgrade(engine)
    extract = clinic_extract()[:approvals]
    terminology = as_terminology(load_omop("5.4"))
    with session_scope(engine) as session:
        project = crud.create_project(
            session, ProjectCreate(name="clinic etl", source_system="clinic", target_terminology=TARGET), "setup"
        )
        rows = source_items(SourceSchema("clinic", [c for c, _ in extract]))
        crud_imports.import_items(session, project, [crud_imports.ImportRow(*r[:2], None, r[2]) for r in rows], "setup")
        crud_imports.generate_suggestions(session, project, bundled(encoder), SuggestRequest(top_k=5), "setup")
        for column, target in extract:
            item = crud.get_item(session, project, column.key)
            decision = DecisionCreate(action="remap", target_code=target)
            decisions.decide(session, project, column.key, decision, "rev", item.version, terminology)
        crud_releases.create_release(session, project, "lead")
    return settings, engine


@pytest.fixture
def field_store(tmp_path, encoder, monkeypatch):
    monkeypatch.delenv("CROSSWALK_MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    return make_store(tmp_path, encoder)


@pytest.fixture
def cli(field_store, encoder, monkeypatch):
    """The real entry point on the field store, with MiniLM stood in by the HashingEncoder."""
    settings, engine = field_store
    monkeypatch.setenv("CROSSWALK_HOME", str(settings.home))
    monkeypatch.setenv("CROSSWALK_DATABASE_URL", str(engine.url))
    monkeypatch.setattr("service.engine.bundled_encoder", lambda s: encoder)
    get_settings.cache_clear()
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()

    def run(*args: str, code: int = 0, capsys) -> tuple[str, str]:
        from service.cli import main

        monkeypatch.setattr(sys, "argv", ["crosswalk", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        out = capsys.readouterr()
        assert (exited.value.code or 0) == code, out
        return out

    yield run
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()


def column_item(key: str) -> SourceItem:
    from models.fields.serving import source_item_context

    column = next(c for c, _ in clinic_extract() if c.key == key)
    return SourceItem(column.key, column.description, source_item_context(column))


def test_approved_field_mappings_train_a_field_model_that_is_promoted_and_served(cli, field_store, encoder, capsys):
    settings, engine = field_store
    out, _ = cli("train", "--release", "1", "-p", "clinic etl", capsys=capsys)
    assert "challenger v1" in out and "champion bundled" in out and "gate: passes" in out, out
    assert f"registered models:/{NAME}/1" in out
    run = tracking.Registry(settings.home).run(tracking.Registry(settings.home).alias(NAME, "challenger").run_id)
    assert run.data.params["terminology"] == TARGET and run.data.params["field_model"].startswith("fields-")
    assert run.data.params["split_heldout"] == "7" and run.data.params["data_sha256"]
    assert {"acc_at_1", "acc_at_5", "ece", "champion_acc_at_1", "weight_history_table"} <= set(run.data.metrics)
    assert run.data.metrics["acc_at_1"] > run.data.metrics["champion_acc_at_1"]
    out, _ = cli("models", "promote", "-t", TARGET, capsys=capsys)
    assert f"models:/{NAME}/1 is now champion" in out

    # The service now serves the promoted field model: an encounter's attending provider goes where
    # the team sent the encounter's other columns (visit_occurrence), not to the provider table.
    served = service.engine.get_suggester(get_settings(), TARGET)
    assert served.model_version == f"models:/{NAME}/1"
    item = column_item("ENCOUNTER.ATTEND_PROV_ID")
    assert is_test_code(item.code)  # held out: the model never saw this column approved
    assert bundled(encoder).suggest([item], 5)[0][0].code == "provider.provider_id"
    [ranked] = served.suggest([item], 5)
    assert ranked[0].code == "visit_occurrence.provider_id" and "history_table" in ranked[0].evidence
    remembered = {a.source.key for a in served.suggester.ranker.history.approved}
    assert len(remembered) == 53 and item.code not in remembered  # train + fit columns, never the held-out
    with session_scope(engine) as session:
        project = crud.get_project(session, "clinic etl")
        made = crud_imports.generate_suggestions(session, project, served, SuggestRequest(top_k=3), "svc")
    assert made.model_version == f"models:/{NAME}/1"


def test_a_worse_field_model_is_refused_and_the_refusal_is_audited(field_store, encoder, monkeypatch):
    from training import fields

    settings, engine = field_store
    fitted = fields.fit_weights
    monkeypatch.setattr(fields, "fit_weights", lambda pools, c=1.0: -fitted(pools, c))  # ranks backwards
    report = retraining.train_release(settings, engine, "clinic etl", 1, bundled(encoder), None, progress=False)
    assert report.challenger["acc@1"] < report.champion["acc@1"] and not report.decision.promote
    registry = tracking.Registry(settings.home)
    assert registry.alias(NAME, tracking.CHALLENGER).version == report.version
    with session_scope(engine) as session:
        row, decision = retraining.promote(session, registry, TARGET, "ml-lead")
    assert not decision.promote and registry.alias(NAME, tracking.CHAMPION) is None
    with session_scope(engine) as session:
        assert [e.action for e in audit.history(session, entity=f"model_promotion:{row.id}")] == [
            "model.promote_refused"
        ]


def test_too_few_field_approvals_is_a_one_line_refusal(tmp_path, encoder, monkeypatch, capsys):
    settings, engine = make_store(tmp_path / "small", encoder, approvals=12)
    monkeypatch.setenv("CROSSWALK_HOME", str(settings.home))
    monkeypatch.setenv("CROSSWALK_DATABASE_URL", str(engine.url))
    monkeypatch.setattr("service.engine.bundled_encoder", lambda s: encoder)
    service.engine.terminologies.cache_clear()
    get_settings.cache_clear()
    from service.cli import main

    monkeypatch.setattr(sys, "argv", ["crosswalk", "train", "--release", "1"])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "has 12 approved mappings" in err and "needs at least 20" in err
    assert not tracking.configured(settings.home)
    with session_scope(engine) as session:
        assert session.exec(select(ModelPromotion)).first() is None
    service.engine.terminologies.cache_clear()
