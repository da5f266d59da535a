"""`crosswalk serve`: the review service's HTTP API, on a store migrated at start."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.settings import get_settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    suggester_factory: Annotated[
        str | None,
        typer.Option(
            help="module:function(terminology_name) -> suggester, instead of the bundled engine (benchmarks).",
            hidden=True,
        ),
    ] = None,
) -> None:
    """Run the review service's HTTP API (migrates the store first)."""
    import uvicorn

    from service.store.db import engine_for, upgrade
    from service.web.app import create_app, load_serving_models

    settings = get_settings()
    factory = _import(suggester_factory) if suggester_factory else None
    upgrade(engine_for(settings.database_url))  # the schema is at head before the first request
    api = create_app(settings, factory)
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
