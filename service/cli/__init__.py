"""The `crosswalk` command line. `app.py` holds the root; one module per command group.

Importing this package registers every command group on `app`.
"""

from service.cli import mapping  # noqa: E402,F401  (registers: suggest, terminology, demo)
from service.cli.app import app, main

__all__ = ["app", "main"]
