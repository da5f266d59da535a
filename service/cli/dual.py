"""`crosswalk dual agreement`: dual independent mapping, agreement between mappers."""

from __future__ import annotations

import typer

from service.cli.app import app
from service.cli.common import ProjectOption, transaction

dual_app = typer.Typer(help="Dual independent mapping: agreement between mappers.", no_args_is_help=True)
app.add_typer(dual_app, name="dual")


@dual_app.command("agreement")
def dual_agreement(project: ProjectOption) -> None:
    """Percent agreement and Cohen's kappa per mapper pair and per domain."""
    from service import crud
    from service.living.dual import agreement

    with transaction() as session:
        report = agreement(session, crud.get_project(session, project))
    typer.echo(f"{'mappers / domain':<32} {'items':>5} {'agreed':>6} {'%':>7} {'kappa':>7}")
    for row in [*report.pairs, *report.domains]:
        who = " + ".join(row.mappers) if row.domain is None else f"domain {row.domain or '(none)'}"
        kappa = "-" if row.kappa is None else f"{row.kappa:.3f}"
        typer.echo(f"{who:<32} {row.items:>5} {row.agreed:>6} {row.percent_agreement or 0:>7.1f} {kappa:>7}")
