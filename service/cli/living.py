"""Living-mapping commands: `terminology update`, `project update-source`, `project reopened`,
`dual agreement`. They work on the store directly, as the local user (see service/cli/review.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.cli.mapping import terminology_app
from service.cli.review import ProjectOption, _suggester, actor, project_app, source_rows, transaction
from service.settings import get_settings

dual_app = typer.Typer(help="Dual independent mapping: agreement between mappers.", no_args_is_help=True)
app.add_typer(dual_app, name="dual")


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
    from models.catalog import BUILT_IN, Catalog, UnknownTerminology
    from models.loaders import FORMATS
    from service.living.terminology import register_release

    if not name or not format:
        raise UserError("give --name (the catalog name) and --format (e.g. loinc, omop, icd10cm-codes, icd10cm)")
    if name in BUILT_IN and format != BUILT_IN[name]:
        raise UserError(f"{name!r} is built in ({BUILT_IN[name]}); load another release under another name")
    if format not in FORMATS and format not in BUILT_IN.values():
        raise UserError(f"unknown format {format!r}; choose one of: {', '.join([*FORMATS, *BUILT_IN.values()])}")
    catalog = Catalog(get_settings().terminologies_dir)
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


@project_app.command("update-source")
def project_update_source(
    project: ProjectOption,
    path: Annotated[Path, typer.Argument(help="The whole current source list (CSV or Usagi CSV).")],
    format: Annotated[str, typer.Option("--format", help="csv or usagi.")] = "csv",
    resuggest: Annotated[
        bool, typer.Option("--resuggest/--no-resuggest", help="Re-suggest new and changed texts.")
    ] = True,
) -> None:
    """Re-import a source list: report new, removed and changed codes; unchanged decisions carry forward."""
    from service import crud
    from service.living.sources import update_source

    rows = source_rows(path, format)
    with transaction() as session:
        found = crud.get_project(session, project)
        suggester = _suggester(found.target_terminology) if resuggest else None
        report = update_source(session, found, rows, actor(), suggester)
    for label, codes in (
        ("new", report.new),
        ("removed", report.removed),
        ("text changed", report.text_changed),
        ("frequency changed", report.frequency_changed),
        ("context changed", report.context_changed),
    ):
        if codes:
            typer.echo(f"{label} ({len(codes)}): {', '.join(codes[:20])}{' ...' if len(codes) > 20 else ''}")
    typer.echo(
        f"{report.carried_forward} decisions carried forward, {report.reopened} re-opened, "
        f"{report.unchanged} codes unchanged"
    )


@project_app.command("reopened")
def project_reopened(project: ProjectOption) -> None:
    """Mappings sent back to review by a terminology release or a changed source text, and why."""
    from service import crud
    from service.living.terminology import reopenings_of

    with transaction() as session:
        rows = reopenings_of(session, project=crud.get_project(session, project))
    for r in rows:
        typer.echo(f"{r.source_code:<16} {r.cause:<11} {r.change_kind:<9} {r.reason}")
    typer.echo(f"{len(rows)} re-opened", err=True)


@dual_app.command("agreement")
def dual_agreement(project: ProjectOption) -> None:
    """Percent agreement and Cohen's kappa per mapper pair and per domain."""
    from service import crud
    from service.living.dual import agreement

    with transaction() as session:
        report = agreement(session, crud.get_project(session, project))
    typer.echo(f"{'mappers / domain':<32} {'items':>5} {'agreed':>6} {'%':>7} {'kappa':>7}")
    for row in [*report.pairs, *report.domains]:
        who = " + ".join(row.mappers) if row.domain is None else f"domain {row.domain or '(none)'}"
        kappa = "-" if row.kappa is None else f"{row.kappa:.3f}"
        typer.echo(f"{who:<32} {row.items:>5} {row.agreed:>6} {row.percent_agreement or 0:>7.1f} {kappa:>7}")
