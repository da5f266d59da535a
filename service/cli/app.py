"""Root of the `crosswalk` CLI: builds the Typer app and turns expected errors into one line."""

from __future__ import annotations

import os
import sys

import typer

from models.terminology import TerminologyFormatError
from service.settings import PRIVATE_UMASK, get_settings, secure_home
from service.sources import SourceFileError

USER_ERROR = 2  # exit status for bad input the user can fix (every command)
FAILURE = 1  # exit status for a check that failed or an operation that was refused (audit verify, promote)


class UserError(Exception):
    """Bad input the user can fix: printed as one line, exit status USER_ERROR, never a traceback."""


app = typer.Typer(
    name="crosswalk",
    help="AI-assisted terminology mapping and data-quality monitoring for EHR data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    os.umask(PRIVATE_UMASK)  # everything crosswalk writes is private from its creation on
    try:
        _check_home()
        app()
    except (UserError, TerminologyFormatError, SourceFileError) as error:
        typer.echo(f"crosswalk: error: {error}", err=True)
        sys.exit(USER_ERROR)
    except KeyboardInterrupt:
        typer.echo("crosswalk: interrupted", err=True)
        sys.exit(130)


def _check_home() -> None:
    """CROSSWALK_HOME exists and only its owner may enter it (fixed, with a warning, when it was open)."""
    home = get_settings().home
    try:
        warning = secure_home(home)
    except OSError as error:
        raise UserError(f"CROSSWALK_HOME {home}: {error.strerror}; point it at a folder you may write") from None
    if warning:
        typer.echo(f"crosswalk: warning: {warning}", err=True)
