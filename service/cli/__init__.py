"""The `crosswalk` command line. `app.py` holds the root, `common.py` what the commands share; one
module per command group.

Importing this package registers every command group on `app`.
"""

from service.cli import (  # noqa: F401  (each registers its commands)
    audit,
    db,
    dual,
    feeds,
    fields,
    lineage,
    listen,
    mapping,
    monitor,
    projects,
    releases,
    serve,
    tokens,
    training,
)
from service.cli.app import app, main

__all__ = ["app", "main"]
