"""`crosswalk lineage`: where a suggestion, an alert or a review item came from.

A suggestion's chain (model, run, release, approvals) is printed by `training.suggestion_lineage`; an
alert's or an item's stored messages by `service.monitoring.lineage`, the walk the API reads too.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.app import UserError, app
from service.cli.common import MESSAGE_COLUMNS, message_line, printable, transaction

if TYPE_CHECKING:
    from service.store.messages import Lineage

FORMATS = ("table", "csv", "json")
CSV_COLUMNS = ("id", "received_at", "message_type", "site", "control_id", "sha256", "batch_number", "origin", "flagged")


@app.command("lineage")
def lineage(
    suggestion: Annotated[
        int | None, typer.Argument(help="A stored suggestion's id (API: item suggestions, exports).")
    ] = None,
    alert: Annotated[str | None, typer.Option("--alert", "-a", help="An alert's uid (from `alerts list`).")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="With --code: a review item's project (id or name).")
    ] = None,
    code: Annotated[str | None, typer.Option("--code", help="With --project: the review item's source code.")] = None,
    show_message: Annotated[
        bool, typer.Option("--show-message", help="Print each stored message too, control characters escaped.")
    ] = False,
    output: Annotated[str, typer.Option("--format", help="table, csv (messages only) or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="List at most this many messages.")] = 1000,
) -> None:
    """Where something came from. A suggestion: model version -> MLflow run -> release -> the approvals
    that trained it. An alert (--alert UID): the stored messages of the batches that opened and last
    showed it, from its site. A review item (--project, --code): every message that carried its code.
    Messages are listed with control id, type, site, arrival and sha256."""
    from service import crud
    from service.cli.training import suggestion_lineage
    from service.monitoring.alerts import find_alert
    from service.monitoring.lineage import alert_lineage, item_lineage

    output = "json" if as_json else output
    if output not in FORMATS:
        raise UserError(f"--format {output!r}: choose table, csv or json")
    if (project is None) != (code is None):
        raise UserError("--project and --code go together: the review item's project and its source code")
    if [suggestion is not None, alert is not None, project is not None].count(True) != 1:
        raise UserError("give one of: a suggestion id, --alert UID, or --project and --code of a review item")
    if suggestion is not None:
        if output == "csv":
            raise UserError("--format csv lists messages: a suggestion's lineage prints as table or json")
        suggestion_lineage(suggestion, output == "json")
        return
    with transaction() as session:
        if alert is not None:
            feed, row = find_alert(session, alert)
            found = alert_lineage(session, feed, row, limit=limit, raw=show_message)
        else:
            item_project = crud.get_project(session, project)
            found = item_lineage(session, item_project, code, limit=limit, raw=show_message)
    if output == "json":
        typer.echo(json.dumps(found.model_dump(exclude_none=True), indent=1, ensure_ascii=False))
    elif output == "csv":
        typer.echo(_csv(found, show_message), nl=False)
    else:
        _table(found)
    typer.echo(f"{len(found.messages)} of {found.total} message(s)", err=True)


def _table(found: Lineage) -> None:
    if found.source == "alert":
        batches = ", ".join(map(str, found.batches)) or "none"
        typer.echo(printable(f"alert {found.alert} (feed {found.feed}, segment {found.segment}, batches {batches})"))
    else:
        typer.echo(printable(f"item {found.code} (project {found.project})"))
    typer.echo(f"  {printable(found.summary)}")
    typer.echo(f"{MESSAGE_COLUMNS}{'batch':>17}")
    for m in found.messages:
        typer.echo(f"{message_line(m)}  {m.batch_number or '-':>5}{'  flagged' if m.flagged else ''}")
        for segment in m.raw.splitlines() if m.raw else []:
            typer.echo(f"        {printable(segment)}")


def _csv(found: Lineage, show_message: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CSV_COLUMNS, *(["message"] if show_message else [])])
    for m in found.messages:
        values = [getattr(m, column) for column in CSV_COLUMNS]
        writer.writerow([*values, *([printable(m.raw or "")] if show_message else [])])
    return buffer.getvalue()
