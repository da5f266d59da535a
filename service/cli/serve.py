"""`crosswalk serve`: the review service's HTTP API, on a store migrated at start."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.settings import get_settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info (each request), warning or error.")
    ] = "info",
    log_json: Annotated[bool, typer.Option("--log-json", help="One JSON object a line (for log collectors).")] = False,
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

    level = LOG_LEVELS.get(log_level.lower())
    if level is None:
        raise UserError(f"--log-level {log_level!r}: choose one of {', '.join(LOG_LEVELS)}")
    configure_logging(level, log_json)
    log = logging.getLogger("crosswalk.serve")
    settings = get_settings()
    factory = _import(suggester_factory) if suggester_factory else None
    upgrade(engine_for(settings.database_url))  # the schema is at head before the first request
    api = create_app(settings, factory)
    for terminology, model_version in load_serving_models(api).items():  # the champion, at start
        log.info("serving %s with %s", terminology, model_version)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    log.info("listening on %s (review UI %s/ui/, API docs %s/docs), store %s", base, base, base, _shown(settings))
    # No access log: its query strings could carry search texts; the app logs route templates only.
    # Keep-alive longer than the slowest answer under load: with uvicorn's 5 s, a client reusing a connection
    # the server is just closing gets a dropped request (seen at 256 clients).
    uvicorn.run(api, host=host, port=port, access_log=False, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
    log.info("stopped")


KEEP_ALIVE_S = 75  # as common load balancers' idle timeout

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name}
        return json.dumps(entry | {"message": record.getMessage()})


def configure_logging(level: int, as_json: bool = False) -> None:
    """crosswalk's own loggers (requests: method, route template, status, time; never texts or tokens)
    to stderr at `level`; other libraries stay at warning."""
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonLines() if as_json else plain)
    root = logging.getLogger("crosswalk")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _shown(settings) -> str:
    """The store's URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _import(spec: str):
    module, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise UserError(f"--suggester-factory {spec!r}: {error}") from None
