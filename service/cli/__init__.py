"""The `crosswalk` command line. `app.py` holds the root; one module per command group.

Importing this package registers every command group on `app`.
"""

import service.cli.fields  # noqa: F401  (registers `crosswalk fields ...`)
from service.cli import feeds, living, mapping, monitor, review, training  # noqa: F401  (each registers its commands)
from service.cli.app import app, main

__all__ = ["app", "main"]
