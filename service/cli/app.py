"""Root of the `crosswalk` CLI: builds the Typer app and turns expected errors into one line."""

from __future__ import annotations

import sys

import typer

from models.terminology import TerminologyFormatError
from service.sources import SourceFileError


class UserError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2, never a traceback."""


app = typer.Typer(
    name="crosswalk",
    help="AI-assisted terminology mapping and data-quality monitoring for EHR data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    try:
        app()
    except (UserError, TerminologyFormatError, SourceFileError) as error:
        typer.echo(f"crosswalk: error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("crosswalk: interrupted", err=True)
        sys.exit(130)
