"""`crosswalk db upgrade`: migrate the review store's schema (`serve` also does at start)."""

from __future__ import annotations

import typer

from service.cli.app import app
from service.settings import get_settings

db_app = typer.Typer(help="The review store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the store to the latest schema."""
    from service.store.db import display_url, engine_for, upgrade

    url = get_settings().database_url
    upgrade(engine_for(url))
    typer.echo(f"store at the latest schema: {display_url(url)}")
