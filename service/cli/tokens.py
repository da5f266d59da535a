"""`crosswalk token create|list|revoke`: API tokens for the review service."""

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


@token_app.command("list")
def token_list() -> None:
    """List API tokens: id, name, role, whether revoked (never the secrets)."""
    from service import crud

    with transaction() as session:
        for token in crud.list_tokens(session):
            state = "revoked" if token.revoked else "active"
            typer.echo(f"{token.id}\t{token.name}\t{token.role}\t{state}")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (`crosswalk token list`).")]) -> None:
    """Revoke an API token: requests and browser sessions with it are refused from now on."""
    from service import crud

    with transaction() as session:
        token = crud.revoke_token(session, token_id, actor())
    typer.echo(f"token {token.id} ({token.name}) revoked")
