"""`crosswalk release create|diff|export`: numbered releases of approved mappings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.cli.common import ProjectOption, actor, transaction
from service.exports.formats import FORMATS
from service.settings import get_settings

release_app = typer.Typer(help="Releases of approved mappings: create, diff, export.", no_args_is_help=True)
app.add_typer(release_app, name="release")


@release_app.command("create")
def release_create(
    project: ProjectOption,
    note: Annotated[str | None, typer.Option(help="What changed, for the release notes.")] = None,
) -> None:
    """Snapshot the approved mappings as the next numbered release."""
    from service import crud, crud_releases

    with transaction() as session:
        release = crud_releases.create_release(session, crud.get_project(session, project), actor(), note)
    typer.echo(f"release {release.number}: {release.entry_count} mappings")


@release_app.command("diff")
def release_diff(
    project: ProjectOption,
    base: Annotated[int, typer.Argument(help="The earlier release.")],
    other: Annotated[int, typer.Argument(help="The later release.")],
) -> None:
    """Show mappings added, removed and changed between two releases."""
    from service import crud, crud_releases

    with transaction() as session:
        diff = crud_releases.diff(session, crud.get_project(session, project), base, other)
    for sign, entries in (("+", diff.added), ("-", diff.removed)):
        for e in entries:
            typer.echo(f"{sign} {e.source_code}  -> {e.target_code or '(unmappable)'} {e.relationship or ''}")
    for change in diff.changed:
        b, a = change.before, change.after
        typer.echo(f"~ {a.source_code}  {b.target_code} {b.relationship} -> {a.target_code} {a.relationship}")
    typer.echo(f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed", err=True)


@release_app.command("export")
def release_export(
    project: ProjectOption,
    release: Annotated[int, typer.Option("--release", "-r", help="Release number.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Export a release as FHIR ConceptMap R4/R5, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP or Usagi CSV."""
    from service import crud, crud_releases
    from service.engine import catalog
    from service.exports import export

    if format not in FORMATS:
        raise UserError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if output is not None and not output.parent.is_dir():
        raise UserError(f"{output}: the folder {output.parent} does not exist")
    with transaction() as session:
        bundle = crud_releases.bundle(session, crud.get_project(session, project), release)
        exported = export(bundle, format, catalog(get_settings()))  # omop and usagi look up OMOP concept ids
    if output is None:
        typer.echo(exported.content, nl=False)
    else:
        output.write_text(exported.content, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
