"""Mapping commands: `suggest`, `terminology load|list|update`, `demo`."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from models.catalog import UnknownTerminology
from models.items import CONFIDENT, NO_CONFIDENT_MATCH, no_confident_match
from models.loaders import FORMATS
from service.cli.app import UserError, app
from service.cli.common import EncodingOption, actor, parse_where, served_terminologies, serving_suggester, transaction
from service.settings import get_settings
from service.sources import read_source_items, write_suggestions

terminology_app = typer.Typer(help="Load and list terminologies.", no_args_is_help=True)
app.add_typer(terminology_app, name="terminology")


def _check_filter(terminology: str, filters: dict) -> None:
    from models.terminology import filter_problem

    if not filters:
        return
    try:
        problem = filter_problem(served_terminologies().get(terminology), filters)
    except UnknownTerminology as error:
        raise UserError(f"{error}; load it with `crosswalk terminology load`") from None
    if problem:
        raise UserError(f"--where: {problem}")


@app.command()
def suggest(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV with source_code,source_text (+ context columns).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="CSV to write: source_code,rank,target_code,target_display,score.")
    ],
    terminology: Annotated[
        str, typer.Option("--terminology", "-t", help="Target terminology name (see `crosswalk terminology list`).")
    ] = "icd10cm",
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=100, help="Candidates per source item.")] = 10,
    where: Annotated[
        list[str], typer.Option("--where", help="Only concepts with ATTRIBUTE=VALUE, e.g. billable=true. Repeatable.")
    ] = [],  # noqa: B006
    encoding: EncodingOption = None,
    evidence: Annotated[
        bool, typer.Option("--evidence", help="Add lexical, semantic and matched_text columns.")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Rank on a Dask cluster (tcp://HOST:PORT, or local:N for N local workers) whose workers "
            "share this CROSSWALK_HOME; output identical to a run without it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Rank target concepts for every source code in a CSV file."""
    items = read_source_items(input, encoding)
    if not output.parent.exists():  # say so now, not after minutes of ranking
        raise UserError(f"{output}: the folder {output.parent} does not exist")
    filters = parse_where(where)
    _check_filter(terminology, filters)  # seconds, where building the index first would take minutes
    try:
        results = _rank(items, terminology, top, filters, dask)
    except ValueError as error:
        raise UserError(str(error)) from None
    write_suggestions(output, items, results, evidence)
    typer.echo(f"wrote {sum(map(len, results))} candidates for {len(items)} source items to {output}", err=True)
    weak = [item.code for item, r in zip(items, results) if no_confident_match(r)]
    if weak:
        shown = ", ".join(weak[:10]) + (" ..." if len(weak) > 10 else "")
        typer.echo(
            f"{NO_CONFIDENT_MATCH} (best score < {CONFIDENT}) for {len(weak)} items, review first: {shown}", err=True
        )


def _rank(items, terminology: str, top: int, filters: dict, dask: str | None):
    """Every item's candidates, here or spread over a Dask cluster's workers (each loads the index once)."""
    from tqdm import tqdm

    def bar():
        return tqdm(total=len(items), unit="item", desc="suggesting", file=sys.stderr, disable=None)

    if dask is None:
        engine = serving_suggester(terminology)
        with bar() as progress:
            return engine.suggest(items, top_k=top, where=filters, on_chunk=progress.update)
    from service.cluster import ClusterError, dask_client, describe, suggest_on_cluster

    typer.echo(f"crosswalk: connecting to Dask at {dask}", err=True)
    try:
        with dask_client(dask) as client:
            typer.echo(f"crosswalk: {describe(client)}; each loads {terminology} once", err=True)
            with bar() as progress:
                return suggest_on_cluster(client, get_settings(), terminology, items, top, filters, progress.update)
    except ClusterError as error:
        raise UserError(str(error)) from None
    except UnknownTerminology as error:
        raise UserError(f"{error}; load it with `crosswalk terminology load`") from None


@terminology_app.command("load")
def terminology_load(
    path: Annotated[
        Path,
        typer.Argument(
            help="Release file or folder (Loinc.csv, RXNCONSO.RRF, RF2 snapshot, CONCEPT.csv, CodeSystem JSON)."
        ),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name to use with `crosswalk suggest --terminology`.")],
) -> None:
    """Load a terminology release into the local catalog."""
    from service.engine import catalog

    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    try:
        loaded = catalog(get_settings()).add(format, path, name)
    except ValueError as error:  # includes TerminologyFormatError: file, line, problem
        raise UserError(str(error)) from None
    typer.echo(f"loaded {name}: {len(loaded)} concepts ({loaded.format}, version {loaded.version})")


@terminology_app.command("list")
def terminology_list() -> None:
    """Show the terminologies available to `crosswalk suggest`."""
    from service.engine import catalog

    entries = catalog(get_settings()).entries()
    typer.echo(f"{'name':<20} {'format':<8} {'concepts':>9}  version")
    for entry in entries:
        count = f"{entry.concepts:,}" if entry.concepts else "-"
        typer.echo(f"{entry.name:<20} {entry.format:<8} {count:>9}  {entry.version}")


@terminology_app.command("update")
def terminology_update(
    path: Annotated[
        Path | None, typer.Argument(help="Release file or folder (none for the built-in ICD-10-CM).")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="A loader format, or icd10cm for the built-in release.")
    ] = "",
    name: Annotated[
        str, typer.Option("--name", "-n", help="The catalog name projects use as target terminology.")
    ] = "",
) -> None:
    """Load a new release of a terminology in use: report what changed and re-open the mappings it hit."""
    from models.catalog import BUILT_IN, UnknownTerminology
    from service.engine import catalog as catalog_of
    from service.living.terminology import register_release

    if not name or not format:
        raise UserError("give --name (the catalog name) and --format (e.g. loinc, omop, icd10cm-codes, icd10cm)")
    if name in BUILT_IN and format != BUILT_IN[name]:
        raise UserError(f"{name!r} is built in ({BUILT_IN[name]}); load another release under another name")
    if format not in FORMATS and format not in BUILT_IN.values():
        raise UserError(f"unknown format {format!r}; choose one of: {', '.join([*FORMATS, *BUILT_IN.values()])}")
    catalog = catalog_of(get_settings())
    old = _current(catalog, name, UnknownTerminology)
    new = _load(format, path, name)
    with transaction() as session:
        release = register_release(session, new, old, actor())
    _keep(catalog, name, old, new)
    if old is None and release.previous_version:  # the store knew a release the catalog no longer holds
        typer.echo(
            f"crosswalk: warning: no copy of {name} {release.previous_version} in the catalog to compare with; "
            "mappings approved against it were not checked",
            err=True,
        )
    counts = ", ".join(f"{v} {k}" for k, v in release.counts.items()) or "first release recorded (nothing to compare)"
    typer.echo(f"{name} {release.previous_version or '-'} -> {release.version}: {counts}")
    typer.echo(f"{release.reopened} approved mapping(s) re-opened for review (`crosswalk project reopened -p PROJECT`)")


def _current(catalog, name: str, unknown: type[Exception]):
    if name not in catalog.names():
        return None
    try:
        return catalog.get(name)
    except unknown:
        return None


def _load(format: str, path: Path | None, name: str):
    from models.loaders import load_terminology
    from models.loaders.icd10cm import load as load_built_in
    from models.terminology import TerminologyFormatError

    if format == "icd10cm":
        return load_built_in(None, name)
    if path is None:
        raise UserError(f"--format {format} needs the release file or folder as an argument")
    try:
        loaded = load_terminology(format, path, name)
    except TerminologyFormatError as error:
        raise UserError(str(error)) from None
    if not len(loaded):
        raise UserError(f"{path}: no concepts found")
    return loaded


def _keep(catalog, name: str, old, new) -> None:
    """The new release becomes the catalog's; the one it replaces is archived beside it, not lost."""
    root = Path(catalog.root)
    if old is not None and old.version != new.version:
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", old.version).strip("-")[:60] or "previous"
        old.save(root / "archive" / f"{name}-{slug}.jsonl.gz")
    new.save(root / f"{name}.jsonl.gz")


SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@app.command()
def demo(
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=20, help="Candidates to keep per code.")] = 5,
) -> None:
    """Map the bundled legacy ICD-9-CM codes to billable ICD-10-CM codes, end to end."""
    settings = get_settings()
    source = SAMPLES / "legacy_icd9_diagnoses.csv"
    if not source.exists():
        raise UserError(f"{source}: bundled samples not found; run the demo from a source checkout")
    typer.echo(f"crosswalk demo: data directory {settings.home}", err=True)
    typer.echo("loading ICD-10-CM (the first run builds and caches its index once)...", err=True)
    items = read_source_items(source)
    engine = serving_suggester("icd10cm")
    results = engine.suggest(items, top_k=top, where={"billable": True})
    out_dir = settings.home / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_suggestions(out_dir / "suggestions.csv", items, results, evidence=True)
    _print_top_suggestions(items, results)
    typer.echo(f"\nall {top} candidates per code, with evidence: {out_dir / 'suggestions.csv'}")
    _review_demo(settings, engine)


def _review_demo(settings, engine) -> None:
    """The review loop on the embedded store: project, import, suggestions, approvals, a release."""
    from service.demo import APPROVE_AT, run_review_demo

    summary = run_review_demo(settings, engine)
    typer.echo(f"\napproved by 'demo' (P(correct) >= {APPROVE_AT} and the CMS GEM agrees):")
    for entry in summary["approved"]:
        typer.echo(f"  {entry['code']:<8} {entry['text'][:28]:<28} -> {entry['top']:<8} {entry['score']:.2f}")
    typer.echo("left in the review queue:")
    for entry in summary["queued"]:
        gem = ", ".join(entry["gem"][:3]) or "no GEM target"
        typer.echo(
            f"  {entry['code']:<8} {entry['text'][:28]:<28} -> {entry['top']:<8} {entry['score']:.2f}  "
            f"{entry['why']} (GEM: {gem})"
        )
    typer.echo(
        f"\nreview store {settings.database_url}: project {summary['project']!r} (id {summary['project_id']}), "
        f"{summary['items']} items suggested by {summary['model_version']}, "
        f"{len(summary['approved'])} approved, {len(summary['queued'])} left to review, release {summary['release']} "
        f"with {summary['release_entries']} mappings"
    )
    typer.echo(
        "next: `crosswalk serve`, then a token from `crosswalk token create --name me --role reviewer`; "
        "`crosswalk audit verify` checks the audit chain"
    )


def _print_top_suggestions(items, results) -> None:
    typer.echo(f"\n{'source':<8} {'source text':<28} {'ICD-10-CM':<9} {'score':>5}  display")
    for item, suggestions in zip(items, results):
        best = suggestions[0]
        typer.echo(f"{item.code:<8} {item.text[:28]:<28} {best.code:<9} {best.score:>5.2f}  {best.display[:60]}")
