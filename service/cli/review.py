"""Review-service commands: `serve`, `db`, `token`, `audit`, `project`, `release`.

They work on the store directly (the same crud functions the API calls), as the local user.
"""

from __future__ import annotations

import getpass
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from service.cli.app import UserError, app
from service.settings import get_settings
from service.store.errors import StoreError

db_app = typer.Typer(help="The review store's schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the review service.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
project_app = typer.Typer(help="Mapping projects: create, import source codes, suggest, list.", no_args_is_help=True)
release_app = typer.Typer(help="Releases of approved mappings: create, diff, export.", no_args_is_help=True)
for sub, name in ((db_app, "db"), (token_app, "token"), (audit_app, "audit"), (project_app, "project"), (release_app, "release")):
    app.add_typer(sub, name=name)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project id or name.")]


def actor() -> str:
    """Who the audit log names for CLI changes: CROSSWALK_ACTOR, else the OS user."""
    return os.environ.get("CROSSWALK_ACTOR") or f"cli:{getpass.getuser()}"


@contextmanager
def transaction() -> Iterator[Session]:
    """A migrated store and one transaction; the store's refusals become one-line user errors."""
    from service.store.db import engine_for, session_scope, upgrade

    engine = engine_for(get_settings().database_url)
    upgrade(engine)
    try:
        with session_scope(engine) as session:
            yield session
    except StoreError as error:
        raise UserError(error.detail) from None


# -- serve, db --------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    suggester_factory: Annotated[
        str | None,
        typer.Option(help="module:function(terminology_name) -> suggester, instead of the bundled engine (benchmarks).", hidden=True),
    ] = None,
) -> None:
    """Run the review service's HTTP API (migrates the store first)."""
    import uvicorn

    from service.web.app import create_app, load_serving_models

    factory = _import(suggester_factory) if suggester_factory else None
    api = create_app(get_settings(), factory)
    for terminology, model_version in load_serving_models(api).items():  # the champion, at start
        typer.echo(f"serving {terminology} with {model_version}", err=True)
    # No access log: its query strings could carry search texts; the app logs route templates only.
    uvicorn.run(api, host=host, port=port, access_log=False, log_level="warning")


def _import(spec: str):
    module, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise UserError(f"--suggester-factory {spec!r}: {error}") from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the store to the latest schema."""
    from service.store.db import engine_for, upgrade

    url = get_settings().database_url
    upgrade(engine_for(url))
    typer.echo(f"store at the latest schema: {_safe_url(url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- tokens -----------------------------------------------------------------------------------------
@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer, mapper, reviewer, admin, ops or ml.")],
    name: Annotated[str, typer.Option(help="Who the token is for; the audit log records this name.")],
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from service import crud
    from service.store.tables import Role

    if role not in Role.__members__:
        raise UserError(f"--role {role!r}: choose one of {', '.join(Role.__members__)}")
    with transaction() as session:
        token, secret = crud.create_token(session, name, Role(role), actor())
    typer.echo(f"token {token.id} for {name} ({role}); store it now, it is not shown again:", err=True)
    typer.echo(secret)


# -- audit ------------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain and that every row still matches its latest event (exit 1 if not)."""
    from service import audit

    with transaction() as session:
        result = audit.verify(session)
    if result.ok:
        typer.echo(f"audit log intact: {result.events} events, current state matches")
        return
    for problem in result.problems:
        typer.echo(f"crosswalk audit: {problem}", err=True)
    typer.echo(f"crosswalk audit: first bad event: #{result.first_bad_seq}", err=True)
    raise typer.Exit(1)


@audit_app.command("log")
def audit_log(
    project: ProjectOption,
    item: Annotated[str | None, typer.Option("--item", "-i", help="Source code: that item's history only.")] = None,
) -> None:
    """Show the audit events of a project, or of one of its items."""
    from service import audit, crud

    with transaction() as session:
        found = crud.get_project(session, project)
        if item is None:
            events = audit.history(session, project_id=found.id)
        else:
            events = audit.history(session, entity=audit.entity_of(crud.get_item(session, found, item)))
    for event in events:
        after = event.after or {}
        state = ", ".join(f"{k}={after[k]}" for k in ("status", "target_code", "relationship") if after.get(k))
        model = f" model={event.model_version}" if event.model_version else ""
        typer.echo(f"#{event.seq:<5} {event.time}  {event.actor:<16} {event.action:<22} {event.entity:<12} {state}{model}")


# -- projects ---------------------------------------------------------------------------------------
@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Option(help="Unique project name.")],
    source_system: Annotated[str, typer.Option("--source-system", help="e.g. 'St Mary LIS local lab codes'.")],
    target: Annotated[str, typer.Option("--target", help="Target terminology name, e.g. icd10cm or loinc.")],
    four_eyes: Annotated[bool, typer.Option("--four-eyes", help="Approvals need a second reviewer.")] = False,
    source_uri: Annotated[str | None, typer.Option(help="FHIR system URI of the source codes.")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Only suggest concepts with ATTRIBUTE=VALUE, e.g. billable=true.")
    ] = None,
) -> None:
    """Create a mapping project."""
    from service import crud
    from service.cli.mapping import parse_where
    from service.store.tables import ProjectCreate

    data = _valid(
        ProjectCreate,
        name=name,
        source_system=source_system,
        target_terminology=target,
        four_eyes=four_eyes,
        source_uri=source_uri,
        target_filter=parse_where(where or []),
    )
    with transaction() as session:
        project = crud.create_project(session, data, actor())
    typer.echo(f"project {project.id}: {project.name} ({project.source_system} -> {project.target_terminology})")


def _valid(model, **fields):
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"--{'-'.join(map(str, first['loc'])).replace('_', '-')}: {first['msg']}") from None


@project_app.command("import")
def project_import(
    project: ProjectOption,
    path: Annotated[Path, typer.Argument(help="CSV with source_code,source_text[,frequency,...], or a Usagi CSV.")],
    format: Annotated[str, typer.Option("--format", help="csv or usagi.")] = "csv",
) -> None:
    """Import (or re-import) source codes; decisions already made are kept."""
    from service import crud
    from service.crud_imports import import_items

    rows = source_rows(path, format)
    with transaction() as session:
        result = import_items(session, crud.get_project(session, project), rows, actor())
    typer.echo(f"imported {result.total} codes: {result.created} new, {result.updated} updated, {result.unchanged} unchanged")


def source_rows(path: Path, format: str):
    """The rows of a source list (crosswalk CSV or Usagi CSV), or a one-line error naming the problem."""
    from service.crud_imports import parse_source_file

    if format not in ("csv", "usagi"):
        raise UserError(f"--format {format!r}: choose csv or usagi")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return _store_call(parse_source_file, path.read_bytes(), format, str(path))


def _store_call(function, *args):
    try:
        return function(*args)
    except StoreError as error:
        raise UserError(error.detail) from None


@project_app.command("suggest")
def project_suggest(
    project: ProjectOption,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50, help="Candidates per code.")] = 5,
    only_new: Annotated[bool, typer.Option("--only-new", help="Only codes without suggestions yet.")] = False,
) -> None:
    """Generate and store suggestions for the project's source codes."""
    from service import crud
    from service.crud_imports import generate_suggestions
    from service.store.tables import SuggestRequest

    with transaction() as session:
        found = crud.get_project(session, project)
        suggester = _suggester(found.target_terminology)
        result = generate_suggestions(session, found, suggester, SuggestRequest(top_k=top_k, only_new=only_new), actor())
    typer.echo(f"suggested for {result.items} codes with {result.model_version} (batch {result.batch_id})")


def _suggester(terminology: str):
    from models.catalog import UnknownTerminology
    from service.engine import get_suggester

    try:
        return get_suggester(get_settings(), terminology)
    except UnknownTerminology as error:
        raise UserError(f"{error}; load it with `crosswalk terminology load`") from None


@project_app.command("list")
def project_list() -> None:
    """List projects and how many of their codes are in each status."""
    from service import crud

    with transaction() as session:
        rows = [crud.project_public(session, p) for p in crud.list_projects(session)]
    typer.echo(f"{'id':>4}  {'name':<28} {'target':<12} {'4-eyes':<6} counts")
    for p in rows:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(p.counts.items())) or "-"
        typer.echo(f"{p.id:>4}  {p.name:<28} {p.target_terminology:<12} {'yes' if p.four_eyes else 'no':<6} {counts}")


# -- releases ---------------------------------------------------------------------------------------
@release_app.command("create")
def release_create(
    project: ProjectOption, note: Annotated[str | None, typer.Option(help="What changed, for the release notes.")] = None
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
    format: Annotated[str, typer.Option("--format", "-f", help="fhir-r4, fhir-r5, sssom, omop or usagi.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Export a release as FHIR ConceptMap R4/R5, SSSOM TSV, OMOP SOURCE_TO_CONCEPT_MAP or Usagi CSV."""
    from service import crud, crud_releases
    from service.exports import export

    formats = ("fhir-r4", "fhir-r5", "sssom", "omop", "usagi")
    if format not in formats:
        raise UserError(f"--format {format!r}: choose one of {', '.join(formats)}")
    if output is not None and not output.parent.is_dir():
        raise UserError(f"{output}: the folder {output.parent} does not exist")
    with transaction() as session:
        exported = export(crud_releases.bundle(session, crud.get_project(session, project), release), format)  # type: ignore[arg-type]
    if output is None:
        typer.echo(exported.content, nl=False)
    else:
        output.write_text(exported.content, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
