"""`crosswalk listen`: an MLLP listener for a feed, storing every message before its ACK."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from service.cli.app import app
from service.cli.common import actor, store, transaction


@app.command("listen")
def listen(
    feed: Annotated[str, typer.Option("--feed", "-f", help="Feed id or name the messages belong to.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one, printed).")] = 2575,
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 for every one.")] = "127.0.0.1",
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Review project for new local codes (default: the feed's).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Messages per batch.")] = 500,
    batch_seconds: Annotated[
        float, typer.Option("--batch-seconds", min=0.1, help="Cut a batch of what arrived within this many seconds.")
    ] = 60.0,
) -> None:
    """Accept HL7 v2 over MLLP: each message stored before its ACK, cut into monitored batches (by count or
    time) that raise alerts, their new local codes added to the review queue."""
    from service import crud
    from service.monitoring import feeds
    from service.monitoring.messages import Listener
    from service.settings import get_settings

    with transaction() as session:
        found = feeds.get_feed(session, feed)
        linked = crud.get_project(session, project) if project else None

    def report(batch, events, codes) -> None:
        alerts = ", ".join(f"{line['severity']} {line['check']} {line['column']}" for line in batch.alerts[:5])
        new = f"; {codes.created} new codes, {codes.updated} updated" if codes is not None else ""
        typer.echo(f"batch {batch.number}: {batch.rows} rows, {len(batch.alerts)} alert(s){new}  {alerts}", err=True)

    listener = Listener(
        store(),
        get_settings().home,
        found,
        actor(),
        project=linked,
        host=host,
        port=port,
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        on_batch=report,
    )

    async def run() -> None:
        task = asyncio.create_task(listener.serve())
        ready = asyncio.create_task(listener.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if listener.ready.is_set():
            typer.echo(f"listening for feed {found.name} on {host}:{listener.port} (MLLP)", err=True)
        ready.cancel()
        await task

    try:
        asyncio.run(run())
    except OSError as error:
        from service.cli.app import UserError

        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
