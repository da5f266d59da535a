"""`crosswalk monitor`: score a batch of a feed against a reference and write the alerts as JSON."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import USER_ERROR, app
from service.settings import get_settings


def _fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2 (as every command)."""
    typer.echo(f"crosswalk monitor: error: {message}", err=True)
    raise typer.Exit(USER_ERROR)


@app.command("monitor")
def monitor(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference batch: CSV, Parquet or FHIR NDJSON.")],
    current: Annotated[
        Path,
        typer.Option("--current", "-c", help="Batch to score, same formats; with --dask a glob of CSV or Parquet."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON report to write.")],
    html: Annotated[Path | None, typer.Option("--html", help="Also write Evidently's drift report here.")] = None,
    segment: Annotated[
        str | None, typer.Option("--segment", "-s", help="Column to split by (site, care_site_id, ...).")
    ] = None,
    contract_path: Annotated[
        Path | None, typer.Option("--contract", help="Contract JSON (default: inferred from the reference).")
    ] = None,
    feed: Annotated[str, typer.Option("--feed", help="Feed name in alerts.")] = "default",
    explain_contract: Annotated[
        bool,
        typer.Option(
            "--explain-contract", help="Print each column's role and why (inferred, or from --contract) before scoring."
        ),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Score on a Dask cluster: tcp://HOST:PORT, or local:N (N local workers). "
            "Default: CROSSWALK_DASK_SCHEDULER for a glob or a large batch, else in memory.",
            show_default=False,
        ),
    ] = None,
    fields_project: Annotated[
        str | None,
        typer.Option(
            "--fields-project",
            help="Field-mapping project in the store whose approved mappings give the columns' roles "
            "(over inference; --contract wins over both).",
        ),
    ] = None,
) -> None:
    """Score CURRENT against REFERENCE: completeness, conformance, drift, units, codes, plausibility."""
    # pandas, scipy, sklearn: imported when the command runs, not on every `crosswalk` start
    from monitors.batches import BatchError, read_batch
    from monitors.contract import Contract, ContractError, infer_contract
    from monitors.report import evidently_html, score_batch
    from service.cluster import scheduler_for

    address = scheduler_for(get_settings(), str(current), dask)
    if address is None and glob.has_magic(str(current)):
        _fail(
            f"--current {current} is a glob: score it on a Dask cluster with --dask local:N or --dask tcp://HOST:PORT"
        )
    if address is not None and html is not None:
        _fail("--html reads both batches in memory; drop --html to score on Dask (or --dask to score in memory)")
    try:
        ref_frame = read_batch(reference)
        if segment is not None and segment not in ref_frame.columns:
            _fail(f"--segment {segment}: no such column in {reference}")
        segments = [segment] if segment else None  # the split column is a segment, whatever its values look like
        roles = _field_roles(fields_project, list(ref_frame.columns)) if fields_project and not contract_path else None
        contract = (
            Contract.load(contract_path)
            if contract_path
            else infer_contract(
                ref_frame,
                feed=feed,
                segment_columns=segments,
                roles=roles.roles if roles else None,
                pairs=roles.pairs if roles else None,
            )
        )
        cur_frame = read_batch(current, contract) if address is None else None
    except (BatchError, ContractError) as error:
        _fail(str(error))
    if explain_contract:
        source = f"from {contract_path}" if contract_path else f"inferred from {reference}"
        if roles is not None:
            source += f" with the approved field mappings of project {fields_project}"
        typer.echo(f"contract ({source}):")
        for line in contract.explain() + (roles.notes if roles else []):
            typer.echo(f"  {line}")
    elif fields_project and contract_path:
        typer.echo(f"note: --contract {contract_path} wins; --fields-project {fields_project} not applied", err=True)
    if address is None:
        report = score_batch(ref_frame, cur_frame, contract, segment=segment, feed=feed, batch_id=current.name)
    else:
        report = _score_on_dask(address, str(current), ref_frame, contract, segment, feed)
    output.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    if html is not None:
        evidently_html(ref_frame, cur_frame, html, contract)
    _print_summary(report, output)


def _score_on_dask(address: str, current: str, reference, contract, segment: str | None, feed: str):
    """The current batch (a file or a glob of them) profiled partition by partition where it lives; the
    reference, a sample that fits, profiled here. Alerts are those of the in-memory path."""
    from monitors.batches import BatchError
    from monitors.scale import score_batch_dask
    from service.cluster import ClusterError, dask_client, describe

    typer.echo(f"crosswalk monitor: connecting to Dask at {address}", err=True)
    try:
        with dask_client(address) as client:
            typer.echo(f"crosswalk monitor: {describe(client)}; profiling {current}", err=True)
            return score_batch_dask(
                current, reference, contract, segment=segment, feed=feed, batch_id=Path(current).name
            )
    except (BatchError, ClusterError) as error:
        _fail(str(error))


def _field_roles(project: str, columns: list[str]):
    """Roles from the approved mappings of a field-mapping project in the store."""
    from service import crud
    from service.cli.common import transaction
    from service.monitoring.field_roles import fields_project, roles_for
    from service.settings import get_settings

    with transaction() as session:  # a missing project or one that maps codes: a one-line error, exit 2
        found = fields_project(session, get_settings().home, crud.get_project(session, project).id)
        return roles_for(session, found.id, columns)


def _print_summary(report, output: Path) -> None:
    counts = report.to_dict()["summary"]
    typer.echo(
        f"{report.rows_current} rows scored against {report.rows_reference}; {report.tests} tests; "
        f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info"
    )
    if report.alerts:
        typer.echo(f"{'severity':<9} {'check':<15} {'segment':<12} {'column':<32} message")
        for alert in report.alerts:
            typer.echo(
                f"{alert.severity:<9} {alert.check:<15} {alert.segment[:12]:<12} {alert.column[:32]:<32} "
                f"{alert.message}"
            )
    typer.echo(f"report: {output}")
