"""Monitoring commands on the store: `feed create|list|post|contract|webhook|deliver|dead-letters|batch-messages`,
`alerts list|ack|resolve`.

The same functions the /feeds API calls (`service.monitoring`), in one transaction per change, as the
local user (`actor()`); `crosswalk monitor` is the store-less one-off comparison of two files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import UserError, app
from service.cli.common import MESSAGE_COLUMNS, actor, message_line, store, store_call, transaction, valid
from service.settings import get_settings

feed_app = typer.Typer(
    help="Monitored feeds: register with a reference, post batches, contract, webhooks.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts of monitored feeds: list, acknowledge, resolve.", no_args_is_help=True)
app.add_typer(feed_app, name="feed")
app.add_typer(alerts_app, name="alerts")

FieldsProjectOption = Annotated[
    str | None,
    typer.Option(
        "--fields-project",
        help="Field-mapping project (id or name) whose approved mappings say what the columns are.",
    ),
]
DELIVERY_DEADLINE_S = 10.0  # after `feed post`: retry failing receivers this long; the rest stays queued


MESSAGE_SUFFIXES = (".hl7", ".er7", ".hl7v2")


def _upload(path: Path):
    """A file to upload; HL7 v2 messages (.hl7, .er7) as their flat rows, one per result, order, visit..."""
    from service.monitoring.feeds import Upload

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix.lower() not in MESSAGE_SUFFIXES:
        return Upload(path.name, path.read_bytes())
    from ingest import hl7v2
    from service.monitoring.messages import rows_upload

    messages = hl7v2.read_file(path)
    rows = hl7v2.flatten_all(m for m in messages if m.ok)
    if not rows:
        reasons = "; ".join(m.error or "" for m in messages if not m.ok)[:300] or "no messages"
        raise UserError(f"{path}: no rows from its HL7 v2 messages ({reasons})")
    return rows_upload(rows, path.stem + ".csv")


# -- feeds ------------------------------------------------------------------------------------------
@feed_app.command("create")
def feed_create(
    name: Annotated[str, typer.Argument(help="Unique feed name, e.g. st-mary-labs.")],
    reference: Annotated[
        Path, typer.Option("--reference", "-r", help="Trusted data: CSV, Parquet, FHIR NDJSON or HL7 v2 (.hl7).")
    ],
    segment: Annotated[
        list[str] | None, typer.Option("--segment", "-s", help="Column to split by (repeatable).")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Review project whose approved mappings count as mapped.")
    ] = None,
    mapped_column: Annotated[
        list[str] | None, typer.Option("--mapped-column", help="Code column that project maps (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the feed is.")] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Dask cluster (tcp://HOST:PORT, local:N) for this feed's globs and large batch files "
            "(default: CROSSWALK_DASK_SCHEDULER).",
            show_default=False,
        ),
    ] = None,
    fields_project: FieldsProjectOption = None,
) -> None:
    """Register a feed: keep its reference, infer its data contract, profile the reference once."""
    from service import crud
    from service.monitoring import feeds

    upload = _upload(reference)
    with transaction() as session:
        project_id = crud.get_project(session, project).id if project else None
        data = feeds.valid_feed(
            name=name,
            description=description,
            segment_columns=segment or None,
            mapping_project_id=project_id,
            mapped_columns=mapped_column or [],
            dask_scheduler=dask,
            fields_project_id=crud.get_project(session, fields_project).id if fields_project else None,
        )
        feed = feeds.create_feed(session, get_settings().home, data, upload, actor())
        segments = ", ".join(feed.contract["segment_columns"]) or "none"
        mapped = len(feed.field_roles.get("roles", {}))
    roles = f"; {mapped} column role(s) from approved field mappings" if fields_project else ""
    typer.echo(f"feed {feed.id}: {feed.name} ({feed.reference_rows} reference rows; segments: {segments}{roles})")


@feed_app.command("set")
def feed_set(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    fields_project: FieldsProjectOption = None,
    no_fields_project: Annotated[
        bool, typer.Option("--no-fields-project", help="Unlink the field-mapping project.")
    ] = False,
    infer: Annotated[
        bool,
        typer.Option("--infer-contract", help="Drop an explicitly set contract and infer it again."),
    ] = False,
) -> None:
    """Link a field-mapping project (its approved mappings say what the columns are) or unlink it; an inferred
    contract is inferred again and the reference re-profiled (audited)."""
    from service import crud
    from service.monitoring import feeds

    if fields_project and no_fields_project:
        raise UserError("--fields-project and --no-fields-project: choose one")
    if not (fields_project or no_fields_project or infer):
        raise UserError("nothing to set: give --fields-project, --no-fields-project or --infer-contract")
    with transaction() as session:
        found = feeds.get_feed(session, feed)
        fields: dict = {"infer_contract": infer}
        if fields_project or no_fields_project:
            fields["fields_project_id"] = crud.get_project(session, fields_project).id if fields_project else None
        data = feeds.valid_feed(feeds.FeedUpdate, **fields)
        found = feeds.update_feed(session, get_settings().home, found, data, actor(), None)
        mapped = len(found.field_roles.get("roles", {}))
        source = f"set by {found.contract_set_by}" if found.contract_set_by else "inferred"
    typer.echo(f"feed {found.name}: contract {source}; {mapped} column role(s) from approved field mappings")


@feed_app.command("list")
def feed_list() -> None:
    """List feeds with their batch count and active alerts."""
    from service.monitoring import feeds

    with transaction() as session:
        rows = [feeds.feed_public(session, f) for f in feeds.list_feeds(session)]
    typer.echo(f"{'id':>4}  {'name':<28} {'batches':>7}  {'segments':<16} active alerts")
    for f in rows:
        active = ", ".join(f"{k}={v}" for k, v in sorted(f.active_alerts.items())) or "-"
        typer.echo(f"{f.id:>4}  {f.name:<28} {f.batches:>7}  {','.join(f.segment_columns) or '-':<16} {active}")


@feed_app.command("post")
def feed_post(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    files: Annotated[list[Path], typer.Argument(help="Batch file(s), scored in order: CSV, Parquet or FHIR NDJSON.")],
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Profile each batch on a Dask cluster (tcp://HOST:PORT, or local:N); a quoted glob is one batch. "
            "Default: CROSSWALK_DASK_SCHEDULER for a glob or a large file.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score batches of a feed: alerts are stored (one per problem), webhooks notified."""
    from tqdm import tqdm

    from monitors.contract import Contract
    from service.cluster import scheduler_for
    from service.monitoring import feeds, outbox

    settings = get_settings()
    home = settings.home
    feed_id = None
    with transaction() as session:
        feed_scheduler = feeds.get_feed(session, feed).dask_scheduler
    for path in tqdm(files, desc="batches", unit="batch", disable=len(files) < 2):
        address = scheduler_for(settings, str(path), dask, feed_scheduler)
        if address is None:
            upload = _upload(path)
        else:
            with transaction() as session:  # newly approved field roles reach the contract it is profiled under
                found = feeds.get_feed(session, feed)
                feeds.refresh_field_roles(session, home, found, actor())
                contract = Contract.from_dict(found.contract)
            upload = _profiled(contract, path, address)
        with transaction() as session:
            found = feeds.get_feed(session, feed)
            batch, _ = feeds.post_batch(session, home, found, upload, actor())
            feed_id = found.id
        counts = batch.summary["alerts"]
        events = ", ".join(f"{k} {v}" for k, v in sorted(batch.summary["events"].items())) or "no alert changes"
        typer.echo(
            f"{path.name}: batch {batch.number}, {batch.rows} rows; {counts['critical']} critical, "
            f"{counts['warning']} warning, {counts['info']} info; {events}"
        )
        for line in batch.alerts:
            typer.echo(f"  {line['severity']:<8} {line['uid']}  {line['message']}")
    if feed_id is not None:
        result = outbox.deliver(store(), home, feed_id, DELIVERY_DEADLINE_S)
        if result is not None and result.pending:
            typer.echo(
                f"{result.pending} webhook message(s) still pending; `crosswalk feed deliver` retries them", err=True
            )


def _profiled(contract, path: Path, address: str):
    """The batch (a file or a glob) profiled on the Dask cluster, before the store is locked for it."""
    from service.monitoring import feeds

    typer.echo(f"crosswalk: profiling {path} on Dask at {address}", err=True)
    return store_call(feeds.profile_files, contract, str(path), address)


@feed_app.command("contract")
def feed_contract(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    set_path: Annotated[Path | None, typer.Option("--set", help="Replace the contract with this JSON file.")] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Each column's role and where it came from, instead of JSON.")
    ] = False,
) -> None:
    """Print the feed's data contract as JSON, or replace it (the reference is re-profiled)."""
    from monitors.contract import Contract
    from service.monitoring import feeds

    if set_path is not None:
        try:
            data = json.loads(set_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{set_path}: not a readable JSON file ({error})") from None
        if not isinstance(data, dict):
            raise UserError(f"{set_path}: the contract must be a JSON object")
    with transaction() as session:
        found = feeds.get_feed(session, feed)
        if set_path is not None:
            found = feeds.update_contract(session, get_settings().home, found, data, actor(), None)
        contract, set_by, notes = found.contract, found.contract_set_by, found.field_roles.get("notes", [])
    if not explain:
        typer.echo(json.dumps(contract, indent=2))
        return
    typer.echo(f"contract ({f'set by {set_by}: not re-inferred' if set_by else 'inferred'}):")
    for line in [*Contract.from_dict(contract).explain(), *notes]:
        typer.echo(f"  {line}")


@feed_app.command("webhook")
def feed_webhook(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    url: Annotated[str, typer.Option(help="http(s) URL that receives the alert events.")],
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the shared secret.")
    ] = "CROSSWALK_WEBHOOK_SECRET",
    max_attempts: Annotated[int, typer.Option(help="Attempts before a message is given up (dead).")] = 8,
    base_delay: Annotated[
        float, typer.Option(help="Seconds before the 2nd attempt; doubles after each failure.")
    ] = 2.0,
) -> None:
    """Send the feed's alert events to URL, signed with HMAC-SHA256: the secret is read from the environment
    (kept off the command line and shell history), or generated and printed once when the variable is unset."""
    import os
    import secrets

    from service.monitoring import feeds
    from service.store.feeds import WebhookCreate

    given = os.environ.get(secret_env)
    secret = given or secrets.token_urlsafe(32)
    data = valid(WebhookCreate, url=url, secret=secret, max_attempts=max_attempts, base_delay=base_delay)
    with transaction() as session:
        hook = feeds.add_webhook(session, get_settings().home, feeds.get_feed(session, feed), data, actor())
    typer.echo(f"webhook {hook.id}: {hook.url}")
    if not given:
        typer.echo(f"secret (shown once; give it to the receiver): {secret}")


@feed_app.command("deliver")
def feed_deliver(
    feed: Annotated[str | None, typer.Argument(help="Feed id or name (default: every feed).")] = None,
    watch: Annotated[float | None, typer.Option(help="Keep delivering every N seconds until interrupted.")] = None,
) -> None:
    """Post due webhook messages from the outbox (one attempt each); --watch runs as a sidecar."""
    from service.monitoring import feeds, outbox

    feed_id = None
    if feed is not None:
        with transaction() as session:
            feed_id = feeds.get_feed(session, feed).id
    while True:
        result = outbox.deliver(store(), get_settings().home, feed_id)
        assert result is not None
        typer.echo(f"delivered {result.delivered}, pending {result.pending}, dead {result.dead}")
        if watch is None:
            return
        time.sleep(watch)


@feed_app.command("dead-letters")
def feed_dead_letters(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
) -> None:
    """Messages the feed received that could not be read or kept, newest first, with the reason."""
    from service.monitoring import feeds
    from service.monitoring.messages import list_dead_letters

    with transaction() as session:
        rows = list_dead_letters(session, feeds.get_feed(session, feed), limit)
    typer.echo(f"{'id':>6}  {'received':<20} {'origin':<8} {'bytes':>8}  {'control id':<14} reason")
    for r in rows:
        typer.echo(
            f"{r.id:>6}  {r.received_at[:19]:<20} {r.origin[:8]:<8} {r.size:>8}  {r.control_id[:14]:<14} {r.reason}"
        )
    typer.echo(f"{len(rows)} dead letter(s)", err=True)


@feed_app.command("batch-messages")
def feed_batch_messages(
    feed: Annotated[str, typer.Argument(help="Feed id or name.")],
    batch: Annotated[int, typer.Argument(help="Batch number (an alert's first_batch or last_batch).")],
) -> None:
    """The stored messages a batch was cut from: from an alert back to the messages behind it."""
    from service.monitoring import feeds
    from service.monitoring.messages import batch_messages

    with transaction() as session:
        rows = batch_messages(session, feeds.get_feed(session, feed), batch)
    typer.echo(MESSAGE_COLUMNS)
    for r in rows:
        typer.echo(message_line(r))
    typer.echo(f"{len(rows)} message(s) in batch {batch}", err=True)


# -- alerts -----------------------------------------------------------------------------------------
@alerts_app.command("list")
def alerts_list(
    feed: Annotated[str | None, typer.Option("--feed", "-f", help="Feed id or name (default: every feed).")] = None,
    status: Annotated[str | None, typer.Option(help="open, acknowledged, resolved or active.")] = "active",
    severity: Annotated[str | None, typer.Option(help="info, warning or critical.")] = None,
    segment: Annotated[str | None, typer.Option(help="A segment value (site), or * for the whole feed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
) -> None:
    """List alerts, newest first (default: the active ones)."""
    from service.monitoring import alerts, feeds

    with transaction() as session:
        chosen = [feeds.get_feed(session, feed)] if feed else feeds.list_feeds(session)
        pages = [alerts.list_alerts(session, f, status, severity, segment, 0, limit) for f in chosen]
    rows = [a for page in pages for a in page.alerts]
    typer.echo(f"{'uid':<16}  {'feed':<16} {'status':<12} {'severity':<8} {'check':<14} {'segment':<10} message")
    for a in rows:
        typer.echo(
            f"{a.uid:<16}  {a.feed[:16]:<16} {a.status:<12} {a.severity:<8} {a.check:<14} {a.segment[:10]:<10} "
            f"{a.message}"
        )
    typer.echo(f"{len(rows)} alert(s)", err=True)


def _act(uid: str, action: str) -> None:
    from service.monitoring import alerts, outbox

    with transaction() as session:
        feed, _ = alerts.find_alert(session, uid)
        row, event = getattr(alerts, action)(session, feed, uid, actor())
        queued = outbox.queue_events(session, feed, [event], actor())
        feed_id = feed.id
    typer.echo(f"alert {uid}: {row.status} by {actor()}")
    if queued:
        outbox.deliver(store(), get_settings().home, feed_id, DELIVERY_DEADLINE_S)


@alerts_app.command("ack")
def alerts_ack(uid: Annotated[str, typer.Argument(help="The alert's uid (from `alerts list`).")]) -> None:
    """Acknowledge an open alert: someone is on it."""
    _act(uid, "acknowledge")


@alerts_app.command("resolve")
def alerts_resolve(uid: Annotated[str, typer.Argument(help="The alert's uid (from `alerts list`).")]) -> None:
    """Resolve an alert by hand; a batch still showing the problem opens a new one."""
    _act(uid, "resolve")
