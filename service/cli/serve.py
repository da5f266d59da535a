"""`crosswalk serve`: the review service's HTTP API, on a store migrated at start."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel

from service.cli.app import UserError, app
from service.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Worker processes (PostgreSQL only); they share background work through the store."
        ),
    ] = 1,
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

    level = LOG_LEVELS.get(log_level.lower())
    if level is None:
        raise UserError(f"--log-level {log_level!r}: choose one of {', '.join(LOG_LEVELS)}")
    settings = get_settings()
    if workers > 1 and engine_for(settings.database_url).dialect.name == "sqlite":
        raise UserError(
            f"--workers {workers}: the embedded SQLite store takes one writer at a time, queued inside one process; "
            "set CROSSWALK_DATABASE_URL to a PostgreSQL store to run several workers"
        )
    factory = _import(suggester_factory) if suggester_factory else None  # a bad spec fails here, once
    configure_logging(level, log_json)
    log = logging.getLogger("crosswalk.serve")
    upgrade(engine_for(settings.database_url))  # the schema is at head before the first request
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    where = f"listening on {base} (review UI {base}/ui/, API docs {base}/docs), store {_shown(settings)}"
    # No access log: its query strings could carry search texts; the app logs route templates only.
    # Keep-alive longer than the slowest answer under load: with uvicorn's 5 s, a client reusing a connection
    # the server is just closing gets a dropped request (seen at 256 clients).
    server = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_level": "warning",
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
    if workers == 1:
        api = serving_app(settings, factory, log)
        log.info(where)
        uvicorn.run(api, **server)
    else:
        options = WorkerOptions(log_level=level, log_json=log_json, suggester_factory=suggester_factory)
        os.environ[WORKER_OPTIONS] = options.model_dump_json()  # each worker process reads them at start
        log.info("%s, %d workers", where, workers)
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **server)
    log.info("stopped")


WORKER_OPTIONS = "CROSSWALK_SERVE_WORKER_OPTIONS"  # serve -> its worker processes


class WorkerOptions(BaseModel):
    """What `serve --workers N` hands each worker process besides the CROSSWALK_* settings."""

    log_level: int
    log_json: bool
    suggester_factory: str | None


def worker_app() -> FastAPI:
    """The app of one `serve --workers N` worker process (uvicorn imports and calls this in each)."""
    options = WorkerOptions.model_validate_json(os.environ[WORKER_OPTIONS])
    configure_logging(options.log_level, options.log_json)
    factory = _import(options.suggester_factory) if options.suggester_factory else None
    return serving_app(get_settings(), factory, logging.getLogger("crosswalk.serve"))


def serving_app(settings: Settings, factory, log: logging.Logger) -> FastAPI:
    """The app with its serving models built (the champion, at start), so first requests do not wait."""
    from service.web.app import create_app, load_serving_models

    api = create_app(settings, factory)
    for terminology, model_version in load_serving_models(api).items():
        log.info("serving %s with %s (process %d)", terminology, model_version, os.getpid())
    return api


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
