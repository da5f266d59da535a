"""Retraining commands: `train --release N`, `models list|promote`, and what `lineage SUGGESTION_ID` prints."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from service.cli.app import FAILURE, UserError, app
from service.cli.common import actor, store, transaction
from service.settings import get_settings

models_app = typer.Typer(
    help="Registered mapping models (MLflow): list, promote through the gate.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

MarginOption = Annotated[
    float | None, typer.Option("--margin", help="acc@1 the challenger must gain over the champion (default 0.01).")
]
EceOption = Annotated[
    float | None, typer.Option("--ece-tolerance", help="How much worse its calibration error may be (default 0: none).")
]


def _policy(margin: float | None, ece_tolerance: float | None):
    from training.gate import GatePolicy

    for name, value in (("--margin", margin), ("--ece-tolerance", ece_tolerance)):
        if value is not None and not 0 <= value < 1:
            raise UserError(f"{name} {value}: expected a fraction between 0 and 1, e.g. 0.01")
    default = GatePolicy()
    return GatePolicy(
        margin=default.margin if margin is None else margin,
        ece_tolerance=default.ece_tolerance if ece_tolerance is None else ece_tolerance,
    )


def _project_ref(project: str | None) -> str:
    from service import crud

    if project is not None:
        return project
    with transaction() as session:
        projects = crud.list_projects(session)
    if len(projects) != 1:
        raise UserError(f"there are {len(projects)} projects; say which with --project NAME_OR_ID")
    return str(projects[0].id)


@app.command()
def train(
    release: Annotated[int, typer.Option("--release", "-r", help="Release number whose approvals to train on.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project id or name (default: the only one).")
    ] = None,
    max_pairs: Annotated[int, typer.Option(min=1, help="Training pairs to subsample (deterministic; codes).")] = 4000,
    epochs: Annotated[
        int, typer.Option(min=1, max=20, help="Passes over the pairs (early stopping may end sooner; codes).")
    ] = 1,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda when torch sees a GPU; codes).")
    ] = None,
    margin: MarginOption = None,
    ece_tolerance: EceOption = None,
) -> None:
    """Train a challenger on a release's approvals and evaluate it against the champion (same held-out codes).

    A code project fine-tunes the encoder and refits the fusion; a field project (a target data model)
    refits the field suggester's weights and calibration and remembers the approved columns.
    """
    from models.catalog import UnknownTerminology
    from models.fields.serving import FORMAT as TARGET_MODEL
    from models.fields.targets import UnknownTarget
    from service import crud, engine, retraining
    from service.store.errors import StoreError
    from training.finetune import FineTuneConfig
    from training.pipeline import TrainConfig

    settings = get_settings()
    policy = _policy(margin, ece_tolerance)
    ref = _project_ref(project)
    with transaction() as session:
        found = crud.get_project(session, ref)
        terminology_name = found.target_terminology
    try:
        terminology = engine.terminologies(settings).get(terminology_name)
    except (UnknownTerminology, UnknownTarget) as error:
        raise UserError(str(error)) from None
    config = TrainConfig(FineTuneConfig(max_pairs=max_pairs, epochs=epochs, device=device))
    base = engine.bundled_suggester(settings, terminology, progress=True)
    field_base = base if terminology.format == TARGET_MODEL else None
    champion = retraining.champion_suggester(settings, terminology, progress=True, field_base=field_base)
    try:
        report = retraining.train_release(settings, store(), ref, release, base, champion, config, policy)
    except StoreError as error:
        raise UserError(error.detail) from None
    except ValueError as error:
        raise UserError(str(error)) from None
    _print_comparison(report)


def _print_comparison(report) -> None:
    sizes = ", ".join(f"{k} {v}" for k, v in report.sizes.items())
    typer.echo(f"release {report.release}: {sizes} codes; trained in {report.seconds['train']:.0f} s")
    typer.echo(f"{'':28} {'acc@1':>6} {'acc@5':>6} {'acc@10':>6} {'MRR@10':>7} {'ECE':>6} {'p95 ms':>7}")
    for label, metrics in (
        (f"challenger v{report.version}", report.challenger),
        (f"champion {report.champion_label}", report.champion),
    ):
        typer.echo(
            f"{label[:28]:28} {metrics['acc@1']:6.3f} {metrics['acc@5']:6.3f} {metrics['acc@10']:6.3f} "
            f"{metrics['mrr@10']:7.3f} {metrics['ece']:6.3f} {metrics.get('latency_p95_ms', 0):7.1f}"
        )
    verdict = "passes" if report.decision.promote else "fails"
    typer.echo(f"gate: {verdict}; " + "; ".join(report.decision.reasons))
    typer.echo(f"registered models:/{report.name}/{report.version} (alias challenger, run {report.run_id})")
    if report.decision.promote:
        typer.echo(f"promote it with: crosswalk models promote --terminology {report.name.removeprefix('crosswalk-')}")


def _registry():
    from service.retraining import existing_registry

    registry = existing_registry(get_settings())
    if registry is None:
        raise UserError("no model registry yet: train a model first with `crosswalk train --release N`")
    return registry


def _terminology(registry, terminology: str | None) -> str:
    if terminology:
        return terminology
    names = sorted({v.name for v in registry.versions()})
    if len(names) != 1:
        raise UserError(f"{len(names)} registered models ({', '.join(names) or 'none'}); say which with --terminology")
    return names[0].removeprefix("crosswalk-")


@models_app.command("list")
def models_list() -> None:
    """Registered versions, their aliases, the release each was trained on and its held-out metrics."""
    from service import retraining

    for version in retraining.list_versions(_registry()):
        aliases = ",".join(version.aliases) or "-"
        m = version.metrics
        figures = " ".join(f"{k}={m[k]:.3f}" for k in ("acc@1", "acc@10", "ece") if k in m)
        typer.echo(f"models:/{version.name}/{version.version}  [{aliases}]  release {version.release}  {figures}")


@models_app.command("promote")
def models_promote(
    terminology: Annotated[
        str | None, typer.Option("--terminology", "-t", help="Whose model (default: the only one).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Version to promote (default: the challenger).")] = None,
    margin: MarginOption = None,
    ece_tolerance: EceOption = None,
) -> None:
    """Make the challenger the champion if it beat the champion by the margin without worse calibration."""
    from service import retraining
    from service.engine import PROMOTION_CHECK_S

    registry = _registry()
    name = _terminology(registry, terminology)
    policy = _policy(margin, ece_tolerance) if margin is not None or ece_tolerance is not None else None
    with transaction() as session:
        row, decision = retraining.promote(session, registry, name, actor(), version, policy)
    for reason in decision.reasons:
        typer.echo(f"  {reason}", err=not decision.promote)
    if not decision.promote:
        typer.echo(
            f"crosswalk: refused: models:/{row.registered_model}/{row.version} stays challenger (recorded)", err=True
        )
        raise typer.Exit(FAILURE)
    typer.echo(
        f"models:/{row.registered_model}/{row.version} is now champion; running services serve it within "
        f"{PROMOTION_CHECK_S:g} s (POST /models/reload: at once)"
    )


def suggestion_lineage(suggestion_id: int, as_json: bool) -> None:
    """`crosswalk lineage ID`: a suggestion's model version -> MLflow run -> release -> the approvals that trained it."""
    from service import retraining

    with transaction() as session:
        chain = retraining.lineage(session, get_settings(), suggestion_id)
    if as_json:
        typer.echo(json.dumps(chain.model_dump(mode="json"), indent=2))
        return
    s = chain.suggestion
    typer.echo(
        f"suggestion {s.id}: {s.source_code} -> {s.code} (rank {s.rank}, score {s.score}) in batch {chain.batch_id}"
    )
    typer.echo(f"  model    {chain.model.model_version}  aliases: {','.join(chain.model.aliases) or '-'}")
    for p in chain.model.promotions:
        typer.echo(f"           {'promoted' if p['promoted'] else 'refused'} {p['created_at']} by {p['created_by']}")
    if chain.run:
        m = chain.run.metrics
        typer.echo(
            f"  run      {chain.run.run_id} at {chain.run.tracking_uri}  "
            f"held-out acc@1 {m.get('acc_at_1', float('nan')):.3f}"
        )
    if chain.release:
        r = chain.release
        same = "matches" if r.data_sha256 == r.data_sha256_now else "differs now (items changed since)"
        typer.echo(
            f"  release  project {r.project_id} #{r.number} by {r.created_by} at {r.created_at}: "
            f"data {str(r.data_sha256)[:12]} {same}"
        )
        typer.echo(f"  approvals in it: {len(chain.approvals)}")
        for entry in chain.approvals[:10]:
            typer.echo(f"           {entry.source_code} -> {entry.target_code}  by {entry.decided_by}")
        if len(chain.approvals) > 10:
            typer.echo(f"           ... {len(chain.approvals) - 10} more (--json shows all)")
    if chain.note:
        typer.echo(f"  note     {chain.note}")
