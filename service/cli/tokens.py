"""`crosswalk token create`: API tokens for the review service."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.cli.common import actor, transaction

token_app = typer.Typer(help="API tokens for the review service.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer, mapper, reviewer, admin, ops or ml.")],
    name: Annotated[str, typer.Option(help="Who the token is for; the audit log records this name.")],
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from service import crud
    from service.store.tables import Role

    if role not in Role.__members__:
        raise UserError(f"--role {role!r}: choose one of {', '.join(Role.__members__)}")
    with transaction() as session:
        token, secret = crud.create_token(session, name, Role(role), actor())
    typer.echo(f"token {token.id} for {name} ({role}); store it now, it is not shown again:", err=True)
    typer.echo(secret)
