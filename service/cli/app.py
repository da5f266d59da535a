"""Root of the `crosswalk` CLI: builds the Typer app and turns expected errors into one line."""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version

import typer
from typer import _click as click  # Typer's own click: its parameters carry the help's metavars

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


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"crosswalk {version('crosswalk')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("crosswalk (not installed)")
        raise typer.Exit()


@app.callback()
def root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """AI-assisted terminology mapping and data-quality monitoring for EHR data."""


def command() -> click.Command:
    """The command tree with help that reads like a well-kept CLI's: plain text, flags without a type
    label, every value named by what it holds (N, PATH, TEXT) rather than by a Python type."""
    tree = typer.main.get_command(app)
    _tidy(tree)
    return tree


def _tidy(node) -> None:
    node.rich_markup_mode = None  # plain help: no box drawing, `--flag / --no-flag` for booleans
    context = click.Context(node)
    for param in node.params:
        if isinstance(param, typer.core.TyperArgument):  # NEW_NAME, PATHS...: no `{new_name} <list[Path]>`
            param.metavar = param.metavar or param.name.upper()
            param.display_type_rich = lambda ctx: None
            shown = param.metavar + ("..." if param.nargs != 1 else "")
            param._usage_display_name = lambda shown=shown, optional=not param.required: (
                f"[{shown}]" if optional else shown
            )
        elif param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = _metavar(param.display_type(context))
    for child in getattr(node, "commands", {}).values():
        _tidy(child)


def _metavar(shown: str) -> str:
    """Typer's `<path>`, `<int range>`, `<list[str]>` as a value's name: PATH, N, TEXT."""
    kind = shown.strip("<>").removeprefix("list[").removesuffix("]")
    if kind.startswith(("int", "float")):
        return "N"
    if kind in ("str", "text"):
        return "TEXT"
    if "|" in kind:
        return "[" + kind + "]"
    return kind.upper()


def main() -> None:
    os.umask(PRIVATE_UMASK)  # everything crosswalk writes is private from its creation on
    try:
        _check_home()
        command()(prog_name="crosswalk")
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
