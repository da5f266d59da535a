"""Field mapping commands: `fields suggest`, `fields target load|list`."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated

import typer

from ingest.schema import SchemaError, read_source, redact_url
from service.cli.app import UserError, app
from service.settings import get_settings

fields_app = typer.Typer(
    help="Map source columns to a target data model (OMOP CDM, FHIR R4, custom).", no_args_is_help=True
)
target_app = typer.Typer(help="Load and list target data models.", no_args_is_help=True)
fields_app.add_typer(target_app, name="target")
app.add_typer(fields_app, name="fields")

COLUMNS = ["source_table", "source_column", "rank", "target_table", "target_column", "score"]


def _catalog():
    from models.fields.targets import TargetCatalog

    return TargetCatalog(get_settings().home / "targets")


@fields_app.command("suggest")
def fields_suggest(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="Schema CSV (table,column[,description,type,table_description]), CSV/Parquet file or folder, "
            "SQLAlchemy URL, or HL7 v2 file(s)/folder.",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write, one row per candidate.")],
    target: Annotated[
        str, typer.Option("--target", "-t", help="omop-cdm-5.4, omop-cdm-5.3, fhir-r4, a loaded name or a schema CSV.")
    ] = "omop-cdm-5.4",
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=50, help="Candidates per source column.")] = 5,
    evidence: Annotated[bool, typer.Option("--evidence", help="Add the parts of the score as columns.")] = False,
) -> None:
    """Rank target fields for every column of a source."""
    from models.fields.suggest import EVIDENCE, FieldSuggester
    from models.fields.targets import UnknownTarget
    from service.engine import bundled_encoder

    shown = redact_url(source)
    if not output.parent.exists():
        raise UserError(f"{output}: the folder {output.parent} does not exist")
    try:
        schema = read_source(source)
        model = _catalog().get(target)
    except (SchemaError, UnknownTarget) as error:
        raise UserError(str(error)) from None
    for note in schema.notes:
        typer.echo(f"crosswalk: note: {note}", err=True)
    settings = get_settings()
    suggester = FieldSuggester(bundled_encoder(settings), cache_dir=settings.cache_dir).fit(model)
    suggestions = suggester.suggest(schema.columns, top_k=top)
    header = COLUMNS + ([f"evidence_{k}" for k in EVIDENCE] if evidence else [])
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:  # replaced at once: never half-written
        writer = csv.writer(handle)
        writer.writerow(header)
        for suggestion in suggestions:
            column = suggestion.source
            for rank, candidate in enumerate(suggestion.candidates, 1):
                row = [column.table, column.column, rank, candidate.table, candidate.column, f"{candidate.score:.4f}"]
                if evidence:
                    row += [f"{candidate.evidence[k]:.4f}" for k in EVIDENCE]
                writer.writerow(row)
    tmp.replace(output)
    typer.echo(
        f"wrote the top {top} candidates for {len(schema.columns)} columns of {shown} ({model.name}) to {output}",
        err=True,
    )


@target_app.command("load")
def target_load(
    path: Annotated[Path, typer.Argument(help="Schema CSV: table,column[,description,type,table_description].")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name to use with `crosswalk fields suggest --target`.")],
) -> None:
    """Load a custom target data model from a schema CSV."""
    try:
        model = _catalog().save(path, name)
    except SchemaError as error:
        raise UserError(str(error)) from None
    typer.echo(f"loaded {name}: {len(model.fields)} fields in {len(model.tables)} tables")


@target_app.command("list")
def target_list() -> None:
    """Show the target data models available to `crosswalk fields suggest`."""
    for name in _catalog().names():
        typer.echo(name)
