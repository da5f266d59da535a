"""`crosswalk audit verify|log`: the tamper-evident audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.app import FAILURE, app
from service.cli.common import ProjectOption, transaction

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


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
    raise typer.Exit(FAILURE)


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
        typer.echo(
            f"#{event.seq:<5} {event.time}  {event.actor:<16} {event.action:<22} {event.entity:<12} {state}{model}"
        )
