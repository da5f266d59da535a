"""Retraining from releases, the promotion gate, serving the champion, and lineage.

Composes `training/` (datasets, fine-tuning, MLflow) with the store: a release's approvals become a
training set, a challenger is trained and evaluated against the champion on the release's held-out
codes, `promote` moves the `champion` alias only through the gate and records the decision in the
audit log, and every stored suggestion can be traced back to the approvals that trained its model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from models.dense import OnnxEncoder
from models.fields.learned import FieldRanker
from models.fields.serving import FieldTerminologySuggester
from models.fusion import load_fusion
from models.history import ApprovedHistory
from models.suggest import Suggester
from models.terminology import Terminology
from service import audit, crud, crud_releases
from service.settings import Settings
from service.store.errors import Conflict, Invalid, NotFound
from service.store.registry import (
    Lineage,
    LineageModel,
    LineageRelease,
    LineageRun,
    LineageSuggestion,
    ModelPromotion,
    ModelVersionPublic,
)
from service.store.tables import (
    AuditEvent,
    EntryPublic,
    Project,
    Release,
    SourceItem,
    Status,
    Suggestion,
    SuggestionBatch,
)
from training import tracking
from training.evaluate import evaluate
from training.fields import train_field_challenger
from training.gate import GateDecision, GatePolicy, decide
from training.pipeline import FINETUNED_NAME, TrainConfig, train_challenger, write_manifest
from training.sets import ApprovedMapping, Split, data_hash, split_by_code

COMPARED_METRICS = ("acc@1", "acc@5", "acc@10", "mrr@10", "ece", "latency_p50_ms", "latency_p95_ms")


# -- training sets from a release -------------------------------------------------------------------
def release_mappings(session: Session, project: Project, number: int) -> list[ApprovedMapping]:
    """The release's approvals as training data, with what reviewers passed over as hard negatives.

    Negatives: suggestions ranked above the approved target in the item's batch (the reviewer chose
    lower, or remapped), and the top suggestion at each `decision.reject` of the item. Both are read
    from the audit log as it stood when the release was made, so a release always yields the same
    training set (and data hash), whatever happened to its items since.
    """
    release = crud_releases.get_release(session, project, number)
    items = {i.code: i for i in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))}
    history = _item_history_at_release(session, project, release)
    out = []
    for entry in crud_releases.entries_of(session, release):
        if entry.status != Status.approved or not entry.target_code:
            continue
        item = items.get(entry.source_code)
        events = history.get(audit.entity_of(item), []) if item else []
        negatives = _passed_over(session, item, entry.target_code, events) if item else []
        context = dict(item.context) if item else {}
        out.append(
            ApprovedMapping(entry.source_code, entry.source_text, (entry.target_code,), context, tuple(negatives))
        )
    return out


def _item_history_at_release(session: Session, project: Project, release: Release) -> dict[str, list[AuditEvent]]:
    made = session.exec(
        select(AuditEvent.seq).where(
            AuditEvent.entity == audit.entity_of(release), AuditEvent.action == "release.create"
        )
    ).first()
    query = select(AuditEvent).where(AuditEvent.project_id == project.id, col(AuditEvent.entity).startswith("item:"))
    if made is not None:
        query = query.where(AuditEvent.seq < made)
    history: dict[str, list[AuditEvent]] = {}
    for event in session.exec(query.order_by(AuditEvent.seq)):
        history.setdefault(event.entity, []).append(event)
    return history


def _batch_top(session: Session, item: SourceItem, batch_id: int, above: str | None = None) -> list[str]:
    ranked = session.exec(
        select(Suggestion.code)
        .where(Suggestion.item_id == item.id, Suggestion.batch_id == batch_id)
        .order_by(Suggestion.rank)
    ).all()
    if above is not None and above in ranked:
        return list(ranked[: ranked.index(above)])
    return list(ranked[:1])


def _passed_over(session: Session, item: SourceItem, target: str, events: list[AuditEvent]) -> list[str]:
    codes: list[str] = []
    for event in events:
        after = json.loads(event.after) if event.after else {}
        if event.action == "decision.reject" and after.get("suggestion_batch_id"):
            codes += _batch_top(session, item, after["suggestion_batch_id"])
    last = json.loads(events[-1].after) if events and events[-1].after else {}
    if last.get("suggestion_batch_id"):
        codes += _batch_top(session, item, last["suggestion_batch_id"], above=target)
    return [c for c in dict.fromkeys(codes) if c != target]


# -- serving ----------------------------------------------------------------------------------------
def served_name(terminology: str) -> str:
    return tracking.registered_name(terminology)


def open_registry(settings: Settings) -> tracking.Registry:
    """The MLflow registry the settings name (created on first write when embedded)."""
    return tracking.Registry(settings.home, settings.mlflow_tracking_uri)


def existing_registry(settings: Settings) -> tracking.Registry | None:
    """The registry, or None where there is none yet: reading must not create an embedded store."""
    if not tracking.configured(settings.home, settings.mlflow_tracking_uri):
        return None
    return open_registry(settings)


def champion_suggester(
    settings: Settings, terminology: Terminology, progress: bool = False, field_base=None
) -> Suggester | None:
    """The registry's champion for this terminology, or None (no registry, no champion yet).

    For a target data model `field_base` is the bundled field suggester: a registered field model
    ranks with it (its fitted target fields) and the version's learned weights and history.
    """
    registry = existing_registry(settings)
    if registry is None:
        return None
    name = served_name(terminology.name)
    info = registry.alias(name, tracking.CHAMPION)
    if info is None:
        return None
    return registered_suggester(settings, registry, info, terminology, progress, field_base)


def registered_suggester(
    settings: Settings, registry, info, terminology: Terminology, progress: bool = False, field_base=None
) -> Suggester:
    folder = registry.download(info, settings.cache_dir / "registry" / info.name / f"v{info.version}")
    model_version = tracking.model_uri(info.name, info.version)  # what suggestion batches store
    ranker = FieldRanker.load(folder)
    if ranker is not None:
        if field_base is None:
            raise Invalid(f"{model_version} is a field model; {terminology.name} is not a target data model")
        return field_base.with_ranker(ranker, model_version)
    encoder = OnnxEncoder(model_dir=folder / "encoder", export_dir=settings.cache_dir, name=FINETUNED_NAME)
    fusion = load_fusion(folder)
    history, vectors, vectors_model = ApprovedHistory.load(folder) or (None, None, None)
    if vectors_model != encoder.model_id:  # vectors of other weights: encode the sources again
        vectors = None
    suggester = Suggester(
        terminology,
        encoder,
        cache_dir=settings.cache_dir,
        fusion=fusion,
        progress=progress,
        history=history,
        history_vectors=vectors,
    )
    suggester.model_version = model_version
    return suggester


# -- train ------------------------------------------------------------------------------------------
@dataclass
class TrainReport:
    name: str
    version: str
    run_id: str
    release: str
    sizes: dict[str, int]
    challenger: dict[str, float]
    champion: dict[str, float]
    champion_label: str
    decision: GateDecision
    seconds: dict[str, float] = field(default_factory=dict)


EncoderFactory = Callable[[Path], Any]


def onnx_encoder_factory(settings: Settings) -> EncoderFactory:
    return lambda model_dir: OnnxEncoder(model_dir=model_dir, export_dir=settings.cache_dir, name=FINETUNED_NAME)


def train_release(
    settings: Settings,
    engine,
    project_ref: str,
    number: int,
    base: Suggester,
    champion: Suggester | None,
    config: TrainConfig = TrainConfig(),
    policy: GatePolicy = GatePolicy(),
    encoder_factory: EncoderFactory | None = None,
    base_model_dir: Path | None = None,
    progress: bool = True,
    fine_tuner=None,
) -> TrainReport:
    """Train a challenger on release `number`, evaluate it and the champion on the same held-out codes,
    log the run to MLflow, register the version and point the `challenger` alias at it.

    `base` is the zero-shot suggester (bundled model): for codes it mines hard negatives; for a target
    data model (a `FieldTerminologySuggester`) its evidence is what the field model reweighs
    (training/fields.py). `champion` is the registry's champion (None: the bundled model is the one
    to beat).
    """
    import time

    from models.dense import bundled_model_path
    from service.store.db import session_scope

    with session_scope(engine) as session:
        project = crud.get_project(session, project_ref)
        mappings = release_mappings(session, project, number)
        release_row = crud_releases.get_release(session, project, number)
        where = dict(project.target_filter or {}) or None
        release_id = release_row.id
        project_id = project.id
    if base.terminology.name != project.target_terminology:
        raise Invalid(f"project {project.name!r} maps to {project.target_terminology}, not {base.terminology.name}")
    split = split_by_code(mappings)
    _check_split(split, project.name, number, len(mappings))
    started = time.perf_counter()
    name = served_name(base.terminology.name)
    digest = data_hash(mappings)
    with tempfile.TemporaryDirectory(prefix="crosswalk-train-") as tmp:
        out = Path(tmp) / "model"
        if isinstance(base, FieldTerminologySuggester):  # a target data model: refit the field model
            challenger = train_field_challenger(
                base, split, out, where, version=f"fields-{digest[:8]}", progress=progress
            )
        else:
            challenger = train_challenger(
                base,
                base_model_dir or bundled_model_path(),
                split,
                out,
                encoder_factory or onnx_encoder_factory(settings),
                settings.cache_dir,
                config,
                where,
                fusion_version=f"fusion-ft-{digest[:8]}",
                progress=progress,
                **({"fine_tuner": fine_tuner} if fine_tuner else {}),
            )
        trained_s = time.perf_counter() - started
        challenger_metrics = evaluate(challenger.suggester, split.heldout, where)
        baseline = champion or base
        champion_metrics = evaluate(baseline, split.heldout, where)
        decision = decide(challenger_metrics, champion_metrics, policy)
        compared_with = _registered_version(baseline.model_version) or "bundled"
        release_label = f"{project_id}/{number}"
        made = challenger.params()
        write_manifest(
            out,
            {
                "registered_model": name,
                "terminology": base.terminology.name,
                "base_model": made["base_model"],
                "release": release_label,
                "data_sha256": digest,
                "model": challenger.version,
            },
        )
        evaluation = Path(tmp) / "evaluation.json"
        evaluation.write_text(
            json.dumps(
                {"challenger": challenger_metrics, "champion": champion_metrics, "gate": list(decision.reasons)},
                indent=2,
            )
        )
        params = {
            "project_id": project_id,
            "project": project.name,
            "release_id": release_id,
            "release_number": number,
            "data_sha256": digest,
            "terminology": base.terminology.name,
            **made,
            **{f"split_{k}": v for k, v in split.sizes().items()},
            "gate_metric": policy.metric,
            "gate_margin": policy.margin,
            "gate_ece_tolerance": policy.ece_tolerance,
        }
        metrics = {
            **challenger_metrics,
            **{f"champion_{k}": v for k, v in champion_metrics.items()},
            **challenger.metrics(),
            "train_seconds": trained_s,
        }
        registry = open_registry(settings)
        tags = {"crosswalk.compared_with": compared_with, "crosswalk.release": release_label, "crosswalk.model": name}
        run_id = registry.log_run(
            f"{name} release {release_label}",
            params,
            metrics,
            {tracking.MODEL_ARTIFACT: out, "": evaluation},
            tags,
        )
        version = registry.register(name, run_id, description=f"trained on release {release_label} ({digest[:12]})")
        registry.set_alias(name, tracking.CHALLENGER, version)
        # Serve this version later without downloading or re-encoding: its folder is what the run logged.
        dest = settings.cache_dir / "registry" / name / f"v{version}"
        if not dest.exists():
            shutil.copytree(out, dest)
    return TrainReport(
        name,
        version,
        run_id,
        release_label,
        split.sizes(),
        challenger_metrics,
        champion_metrics,
        compared_with if compared_with == "bundled" else tracking.model_uri(name, compared_with),
        decision,
        {"train": trained_s, "total": time.perf_counter() - started},
    )


MIN_APPROVALS = 20  # fewer leave about four held-out sources: a gate on them would be a coin toss


def _check_split(split: Split, project: str, number: int, total: int) -> None:
    if total < MIN_APPROVALS or not split.train or not split.heldout:
        raise Invalid(
            f"release {number} of {project!r} has {total} approved mappings: {len(split.train)} to train on and "
            f"{len(split.heldout)} held out (a fifth of the source codes, by hash); retraining needs at least "
            f"{MIN_APPROVALS}, some of them held out: approve more and release again"
        )


def _registered_version(model_version: str) -> str | None:
    parsed = tracking.parse_model_uri(model_version)
    return parsed[1] if parsed else None


# -- promote ----------------------------------------------------------------------------------------
def _metrics_of(run, prefix: str = "") -> dict[str, float]:
    data = run.data.metrics
    out = {}
    for key in COMPARED_METRICS:
        stored = prefix + tracking.metric_name(key)
        if stored in data:
            out[key] = float(data[stored])
    return out


def promote(
    session: Session,
    registry,
    terminology: str,
    actor: str,
    version: str | None = None,
    policy: GatePolicy | None = None,
) -> tuple[ModelPromotion, GateDecision]:
    """Move `champion` to the challenger (or `version`) if the gate passes; record the decision either way.

    The gate reads the run's own held-out evaluation of the challenger and of the model it was
    compared with; if the champion has changed since, that comparison no longer holds: refused.
    """
    name = served_name(terminology)
    info = registry.version(name, version) if version else registry.alias(name, tracking.CHALLENGER)
    if info is None:
        what = f"version {version} of {name}" if version else f"a {tracking.CHALLENGER} for {name}"
        raise NotFound(f"there is no {what}; train one with `crosswalk train --release N`")
    run = registry.run(info.run_id)
    champion = registry.alias(name, tracking.CHAMPION)
    if champion is not None and champion.version == info.version:
        raise Conflict(f"{tracking.model_uri(name, info.version)} is already the champion")
    current = champion.version if champion else "bundled"
    compared = run.data.tags.get("crosswalk.compared_with", "?")
    policy = policy or _policy_of(run)
    challenger_metrics, champion_metrics = _metrics_of(run), _metrics_of(run, "champion_")
    if compared != current:
        decision = GateDecision(
            False,
            (
                f"the run compared it with {compared} but the champion is now {current}; retrain on the release to compare again",
            ),
        )
    else:
        decision = decide(challenger_metrics, champion_metrics, policy)
    row = ModelPromotion(
        registered_model=name,
        version=info.version,
        run_id=info.run_id,
        previous_version=champion.version if champion else None,
        promoted=decision.promote,
        reasons=list(decision.reasons),
        metrics={**challenger_metrics, **{f"champion_{k}": v for k, v in champion_metrics.items()}},
        created_by=actor,
    )
    action = "model.promote" if decision.promote else "model.promote_refused"
    audit.record(session, actor, action, row, model_version=tracking.model_uri(name, info.version))
    if decision.promote:
        registry.set_alias(name, tracking.CHAMPION, info.version)
        if tracking.CHALLENGER in info.aliases:
            registry.delete_alias(name, tracking.CHALLENGER)
    return row, decision


def _policy_of(run) -> GatePolicy:
    params = run.data.params
    return GatePolicy(
        metric=params.get("gate_metric", "acc@1"),
        margin=float(params.get("gate_margin", GatePolicy.margin)),
        ece_tolerance=float(params.get("gate_ece_tolerance", GatePolicy.ece_tolerance)),
    )


def list_versions(registry) -> list[ModelVersionPublic]:
    out = []
    for info in registry.versions():
        run = registry.run(info.run_id)
        out.append(
            ModelVersionPublic(
                name=info.name,
                version=info.version,
                run_id=info.run_id,
                aliases=list(info.aliases),
                release=run.data.tags.get("crosswalk.release"),
                metrics=_metrics_of(run),
            )
        )
    return out


# -- lineage ----------------------------------------------------------------------------------------
def lineage(session: Session, settings: Settings, suggestion_id: int) -> Lineage:
    """suggestion -> batch -> registered model version -> MLflow run -> release -> its approvals."""
    suggestion = session.get(Suggestion, suggestion_id)
    if suggestion is None:
        raise NotFound(f"no suggestion with id {suggestion_id}")
    batch = session.get(SuggestionBatch, suggestion.batch_id)
    item = session.get(SourceItem, suggestion.item_id)
    out = Lineage(
        suggestion=LineageSuggestion(
            id=suggestion.id,
            project_id=batch.project_id,
            source_code=item.code,
            rank=suggestion.rank,
            code=suggestion.code,
            score=suggestion.score,
        ),
        batch_id=batch.id,
        batch_created_at=batch.created_at,
        model=LineageModel(model_version=batch.model_version, registered=False),
    )
    parsed = tracking.parse_model_uri(batch.model_version)
    if parsed is None:
        out.note = "made by the bundled zero-shot model: no training run or release behind it"
        return out
    name, version = parsed
    out.model = LineageModel(model_version=batch.model_version, registered=True, name=name, version=version)
    promotions = session.exec(
        select(ModelPromotion)
        .where(ModelPromotion.registered_model == name, ModelPromotion.version == version)
        .order_by(col(ModelPromotion.id))
    )
    out.model.promotions = [p.model_dump(mode="json", exclude={"metrics"}) for p in promotions]
    registry = existing_registry(settings)
    if registry is None:
        out.note = "no MLflow registry configured here (CROSSWALK_MLFLOW_TRACKING_URI or <home>/mlflow.db)"
        return out
    info = registry.version(name, version)
    if info is None:
        out.note = f"{batch.model_version} is not in the registry at {registry.uri}"
        return out
    out.model.aliases = list(info.aliases)
    run = registry.run(info.run_id)
    params = dict(run.data.params)
    out.run = LineageRun(
        run_id=info.run_id,
        tracking_uri=registry.uri,
        params=params,
        metrics=dict(run.data.metrics),
        started=run.info.start_time,
    )
    release = session.get(Release, int(params["release_id"])) if params.get("release_id", "").isdigit() else None
    if release is None:
        out.note = "the run names no release of this store"
        return out
    project = session.get(Project, release.project_id)
    out.release = LineageRelease(
        project_id=release.project_id,
        number=release.number,
        created_at=release.created_at,
        created_by=release.created_by,
        entry_count=release.entry_count,
        data_sha256=params.get("data_sha256"),
        data_sha256_now=data_hash(release_mappings(session, project, release.number)),
    )
    out.approvals = [
        EntryPublic.model_validate(e) for e in crud_releases.entries_of(session, release) if e.status == Status.approved
    ]
    return out
