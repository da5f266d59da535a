"""`crosswalk project create|import|items|suggest|list|archive|unarchive|delete|update-source|reopened`:
mapping projects."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.cli.common import (
    EncodingOption,
    ProjectOption,
    actor,
    parse_where,
    served_terminologies,
    serving_suggester,
    source_rows,
    transaction,
    valid,
)
from service.crud_imports import IMPORT_FORMATS
from service.monitoring.messages import MESSAGE_FORMATS

project_app = typer.Typer(help="Mapping projects: create, import source codes, suggest, list.", no_args_is_help=True)
app.add_typer(project_app, name="project")


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Option(help="Unique project name.")],
    source_system: Annotated[str, typer.Option("--source-system", help="e.g. 'St Mary LIS local lab codes'.")],
    target: Annotated[
        str,
        typer.Option("--target", help="Target terminology (icd10cm, loinc) or data model (omop-cdm-5.4, fhir-r4)."),
    ],
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="codes or fields (map source columns); by default what the target is."),
    ] = None,
    four_eyes: Annotated[bool, typer.Option("--four-eyes", help="Approvals need a second reviewer.")] = False,
    source_uri: Annotated[str | None, typer.Option(help="FHIR system URI of the source codes.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Only suggest concepts with ATTRIBUTE=VALUE, e.g. billable=true."),
    ] = None,
) -> None:
    """Create a mapping project: of codes to a terminology, or of source fields to a target data model."""
    from service import crud
    from service.store.tables import ProjectCreate

    _check_kind(kind, target)

    data = valid(
        ProjectCreate,
        name=name,
        source_system=source_system,
        target_terminology=target,
        four_eyes=four_eyes,
        source_uri=source_uri,
        target_filter=parse_where(where or []),
    )
    with transaction() as session:
        project = crud.create_project(session, data, actor(), served_terminologies().require)
    typer.echo(f"project {project.id}: {project.name} ({project.source_system} -> {project.target_terminology})")


@project_app.command("rename")
def project_rename(
    project: ProjectOption,
    new_name: Annotated[str, typer.Argument(help="The project's new, unique name.")],
) -> None:
    """Rename a project (audited; its id, items and releases stay)."""
    from service import crud

    with transaction() as session:
        found = crud.get_project(session, project)
        old = found.name
        crud.rename_project(session, found, new_name, actor())
    typer.echo(f"project {found.id}: {old} -> {new_name}")


@project_app.command("set-target")
def project_set_target(
    project: ProjectOption,
    target: Annotated[str, typer.Argument(help="A loaded terminology (`crosswalk terminology list`).")],
) -> None:
    """Point a project at another terminology, while none of its items has been decided."""
    from service import crud

    with transaction() as session:
        found = crud.get_project(session, project)
        crud.set_target(session, found, target, actor(), served_terminologies().require)
    typer.echo(f"project {found.name}: target {target}; run `crosswalk project suggest -p {found.name}` again")


def _check_kind(kind: str | None, target: str) -> None:
    """A project's kind is what its target is (a terminology or a data model): `--kind` only confirms it."""
    from service.cli.app import UserError
    from service.engine import target_catalog
    from service.settings import get_settings

    if kind is None:
        return
    if kind not in ("codes", "fields"):
        raise UserError(f"--kind {kind!r}: choose codes or fields")
    models = target_catalog(get_settings()).names()
    if kind == "fields" and target not in models:
        raise UserError(f"--target {target!r} is not a target data model; one of {', '.join(models)}")
    if kind == "codes" and target in models:
        raise UserError(f"--target {target!r} is a data model: use --kind fields, or a terminology")


@project_app.command("import")
def project_import(
    project: ProjectOption,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="CSV (source_code,source_text[,frequency,...]), Usagi CSV, or HL7 v2 / FHIR message files."
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join((*IMPORT_FORMATS, *MESSAGE_FORMATS))}.")
    ] = "csv",
    field: Annotated[
        str | None,
        typer.Option("--field", help="Messages: the coded field to collect, e.g. OBX-3 (results), OBR-4, DG1-3."),
    ] = None,
    encoding: EncodingOption = None,
) -> None:
    """Import (or re-import) source codes; decisions already made are kept.

    From HL7 v2 or FHIR messages, the local codes of a field become items with their frequency and context;
    codes the sender also coded in LOINC/SNOMED/ICD are counted and left out."""
    from service import crud
    from service.crud_imports import import_items

    if format in MESSAGE_FORMATS:
        _import_messages(project, paths, format, field)
        return
    if len(paths) != 1:
        raise UserError(f"--format {format} imports one file; got {len(paths)}")
    rows = source_rows(paths[0], format, encoding)
    with transaction() as session:
        result = import_items(session, crud.get_project(session, project), rows, actor())
    typer.echo(
        f"imported {result.total} codes: {result.created} new, {result.updated} updated, {result.unchanged} unchanged"
    )


@project_app.command("import-schema")
def project_import_schema(
    project: ProjectOption,
    source: Annotated[
        str,
        typer.Argument(help="Schema CSV, data file or folder (CSV, Parquet), SQLAlchemy URL, or HL7 v2 file(s)."),
    ],
) -> None:
    """Import a source's columns as the items of a field-mapping project (code `table.column`)."""
    from ingest.schema import redact_url
    from service import crud
    from service.engine import target_catalog
    from service.settings import get_settings
    from service.source_schemas import import_schema, read_local_source, require_field_project

    targets = target_catalog(get_settings()).names()
    with transaction() as session:
        found = crud.get_project(session, project)
        require_field_project(found, targets)  # before reading: a database can take seconds
        result = import_schema(session, found, read_local_source(source), actor(), targets)
    typer.echo(
        f"imported {result.total} columns of {redact_url(source)}: {result.created} new, "
        f"{result.updated} updated, {result.unchanged} unchanged"
    )


def _import_messages(project: str, paths: list[Path], format: str, field: str | None) -> None:
    from service import crud
    from service.monitoring.feeds import Upload
    from service.monitoring.messages import import_messages

    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: no such file")
    uploads = [Upload(p.name, p.read_bytes()) for p in paths]
    with transaction() as session:
        result = import_messages(session, crud.get_project(session, project), uploads, format, field, actor())
    for reason in result.dead_letters[:20]:
        typer.echo(f"dead letter: {reason}", err=True)
    typer.echo(
        f"read {result.messages} messages ({result.stored} new to the store, {len(result.dead_letters)} dead letters); "
        f"{result.codes} local codes: {result.created} new, {result.updated} updated, {result.unchanged} unchanged"
    )
    if result.already_coded:
        examples = ", ".join(result.already_coded_examples[:5])
        typer.echo(f"already coded by the sender (left out): {result.already_coded}, e.g. {examples}")


@project_app.command("items")
def project_items(
    project: ProjectOption,
    status: Annotated[str | None, typer.Option("--status", help="Only items in this status, e.g. new.")] = None,
    confidence: Annotated[
        str | None, typer.Option("--confidence", help="weak: only items with no confident match; or confident.")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List a project's items with their frequency, match confidence and context, most frequent first.

    An item marked weak has no confident match (its best candidate is more likely wrong than right):
    review those first.
    """
    import csv
    import io
    import json

    from sqlmodel import col, select

    from models.items import CONFIDENT_MATCH, WEAK
    from service import crud
    from service.store.tables import SourceItem

    if output not in ("table", "csv", "json"):
        raise UserError(f"--format {output!r}: choose table, csv or json")
    if confidence not in (None, WEAK, CONFIDENT_MATCH):
        raise UserError(f"--confidence {confidence!r}: choose {WEAK} or {CONFIDENT_MATCH}")
    with transaction() as session:
        found = crud.get_project(session, project)
        query = select(SourceItem).where(SourceItem.project_id == found.id)
        if status:
            query = query.where(SourceItem.status == status)
        if confidence:
            query = query.where(crud.with_confidence(confidence))
        items = list(session.exec(query.order_by(col(SourceItem.frequency).desc(), SourceItem.code)))
        confidences = crud.confidences(session, found)
    records = [
        {
            "code": i.code,
            "text": i.text,
            "frequency": i.frequency,
            "status": i.status,
            "confidence": confidences.get(i.id),
            "context": i.context,
        }
        for i in items
    ]
    if output == "json":
        typer.echo(json.dumps(records, indent=1, ensure_ascii=False))
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["code", "text", "frequency", "status", "confidence", "context"])
        for r in records:
            writer.writerow(
                [
                    r["code"],
                    r["text"],
                    r["frequency"] or "",
                    r["status"],
                    r["confidence"] or "",
                    json.dumps(r["context"]),
                ]
            )
        typer.echo(buffer.getvalue(), nl=False)
    else:
        typer.echo(f"{'code':<24} {'text':<36} {'freq':>6}  {'status':<9} {'match':<6} context")
        for r in records:
            context = "; ".join(f"{k}: {v}" for k, v in r["context"].items() if k not in ("field", "coding_system"))
            typer.echo(
                f"{r['code'][:24]:<24} {r['text'][:36]:<36} {r['frequency'] or '':>6}  {r['status']:<9} "
                f"{r['confidence'] or '':<6} {context[:120]}"
            )
    weak = sum(r["confidence"] == WEAK for r in records)
    typer.echo(f"{len(records)} items" + (f", {weak} with no confident match (match: weak)" if weak else ""), err=True)


@project_app.command("suggest")
def project_suggest(
    project: ProjectOption,
    top_k: Annotated[int, typer.Option("--top", "--top-k", "-k", min=1, max=50, help="Candidates per code.")] = 5,
    only_new: Annotated[bool, typer.Option("--only-new", help="Only codes without suggestions yet.")] = False,
) -> None:
    """Generate and store suggestions for the project's source codes."""
    from service import crud
    from service.crud_imports import generate_suggestions
    from service.store.tables import SuggestRequest

    with transaction() as session:
        found = crud.get_project(session, project)
        suggester = serving_suggester(found.target_terminology)
        result = generate_suggestions(
            session, found, suggester, SuggestRequest(top_k=top_k, only_new=only_new), actor()
        )
    typer.echo(f"suggested for {result.items} codes with {result.model_version} (batch {result.batch_id})")


@project_app.command("list")
def project_list(
    archived: Annotated[bool, typer.Option("--archived", help="Also list archived projects.")] = False,
) -> None:
    """List projects and how many of their codes are in each status."""
    from service import crud

    with transaction() as session:
        rows = [crud.project_public(session, p) for p in crud.list_projects(session, archived)]
    typer.echo(f"{'id':>4}  {'name':<28} {'target':<12} {'4-eyes':<6} counts")
    for p in rows:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(p.counts.items())) or "-"
        name = f"{p.name} (archived)" if p.archived else p.name
        typer.echo(f"{p.id:>4}  {name:<28} {p.target_terminology:<12} {'yes' if p.four_eyes else 'no':<6} {counts}")


@project_app.command("archive")
def project_archive(project: ProjectOption) -> None:
    """Archive a project: read-only and hidden from lists; its releases and exports stay readable."""
    from service import crud

    with transaction() as session:
        found = crud.archive_project(session, crud.get_project(session, project), actor())
    typer.echo(f"project {found.id}: {found.name} archived (read-only; `crosswalk project unarchive` undoes it)")


@project_app.command("unarchive")
def project_unarchive(project: ProjectOption) -> None:
    """Make an archived project writable and listed again."""
    from service import crud

    with transaction() as session:
        found = crud.unarchive_project(session, crud.get_project(session, project), actor())
    typer.echo(f"project {found.id}: {found.name} is active again")


@project_app.command("delete")
def project_delete(
    project: ProjectOption,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking to type the project's name.")] = False,
) -> None:
    """Delete a project that has no release, with all its items, decisions and suggestions (audited).

    A released project cannot be deleted: archive it instead."""
    from service import crud

    with transaction() as session:
        found = crud.get_project(session, project)
    if not yes:
        _confirm_deletion(found.name)
    with transaction() as session:
        deleted = crud.delete_project(session, crud.get_project(session, found.id), actor())
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in deleted.removed.items() if n)
    typer.echo(f"project {deleted.id}: {deleted.name} deleted ({counts or 'it was empty'})")


def _confirm_deletion(name: str) -> None:
    if not sys.stdin.isatty():
        raise UserError(f"deleting project {name!r} needs --yes (or type its name at a terminal)")
    typed = typer.prompt(f"Type the project's name ({name}) to delete it and everything in it")
    if typed != name:
        raise UserError(f"{typed!r} is not {name!r}; nothing deleted")


@project_app.command("update-source")
def project_update_source(
    project: ProjectOption,
    path: Annotated[Path, typer.Argument(help="The whole current source list (CSV or Usagi CSV).")],
    format: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(IMPORT_FORMATS)}.")] = "csv",
    encoding: EncodingOption = None,
    resuggest: Annotated[
        bool, typer.Option("--resuggest/--no-resuggest", help="Re-suggest new and changed texts.")
    ] = True,
) -> None:
    """Re-import a source list: report new, removed and changed codes; unchanged decisions carry forward."""
    from service import crud
    from service.living.sources import update_source

    rows = source_rows(path, format, encoding)
    with transaction() as session:
        found = crud.get_project(session, project)
        suggester = serving_suggester(found.target_terminology) if resuggest else None
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
