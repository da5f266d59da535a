"""The `crosswalk` command line. `app.py` holds the root; one module per command group.

Importing this package registers every command group on `app`.
"""

from service.cli import mapping, monitor, review  # noqa: F401  (register their commands)
from service.cli import training  # noqa: F401  (train, models, lineage: issue 5)
from service.cli import living  # noqa: F401  (terminology update, update-source, dual agreement: issue 7)
from service.cli import feeds  # noqa: F401  (feed, alerts: monitored feeds, issue 4)
from service.cli.app import app, main

__all__ = ["app", "main"]
