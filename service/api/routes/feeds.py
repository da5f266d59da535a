"""Monitored feeds: register with a reference, edit the data contract, post batches, read and act on
alerts, drill into a batch's Evidently report, configure webhooks and see their deliveries."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, BackgroundTasks, Body, Depends, FastAPI, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from monitors.alerts import NOTIFY
from monitors.contract import Contract
from service.api.deps import allow
from service.api.problems import MAX_BODY_BYTES
from service.monitoring import alerts as feed_alerts
from service.monitoring import feeds as crud_feeds
from service.monitoring import outbox
from service.store.errors import TooLarge
from service.store.feeds import (
    AlertPage,
    AlertPublic,
    BatchPublic,
    DeliveryPublic,
    DeliveryResult,
    Feed,
    FeedPublic,
    WebhookCreate,
    WebhookPublic,
)
from service.web.deps import CurrentPrincipal, IfMatch, SessionDep, away_from_store
from service.web.roles import Permission

log = logging.getLogger("crosswalk.api")
AFTER_POST_DELIVERY_S = 10.0  # retry a failing receiver this long after a batch; then the worker takes over
WORKER_INTERVAL_S = 5.0
# Evidently's HTML runs scripts and quotes data values: sandboxed, it gets an opaque origin, so it can
# neither read the UI's cookie nor call the API as the person viewing it.
REPORT_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}


@asynccontextmanager
async def _delivery_worker(app: FastAPI) -> AsyncIterator[None]:
    """While the service runs, pending webhook messages are retried in the background."""
    worker = outbox.Worker(app.state.engine, app.state.settings.home, WORKER_INTERVAL_S).start()
    try:
        yield
    finally:
        worker.stop()


router = APIRouter(prefix="/feeds", tags=["feeds"], lifespan=_delivery_worker)


def get_feed(session: SessionDep, feed: str) -> Feed:
    return crud_feeds.get_feed(session, feed)


FeedDep = Annotated[Feed, Depends(get_feed)]


def _home(request: Request) -> Path:
    return request.app.state.settings.home


HomeDep = Annotated[Path, Depends(_home)]


def _upload(file: UploadFile) -> crud_feeds.Upload:
    data = file.file.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"{file.filename}: over the {MAX_BODY_BYTES // 2**20} MB limit; split the batch")
    return crud_feeds.Upload(file.filename or "upload", data)


def _deliver_later(background: BackgroundTasks, request: Request, feed_id: int) -> None:
    def run() -> None:
        try:
            outbox.deliver(request.app.state.engine, request.app.state.settings.home, feed_id, AFTER_POST_DELIVERY_S)
        except Exception as error:  # the messages stay pending; the worker retries them
            log.error("webhook delivery after a batch failed: %s", type(error).__name__)

    background.add_task(run)


# -- feeds and their contract -------------------------------------------------------------------------
@router.post("", status_code=201, response_model=FeedPublic, **allow(Permission.monitor, 409, 413, 422))
def create_feed(
    session: SessionDep,
    principal: CurrentPrincipal,
    home: HomeDep,
    name: Annotated[str, Form(description="Unique feed name, e.g. 'st-mary-labs'.")],
    file: Annotated[UploadFile, File(description="Reference batch: trusted data (CSV, Parquet or FHIR NDJSON).")],
    description: Annotated[str | None, Form()] = None,
    segment_columns: Annotated[list[str] | None, Form(description="Columns to split by; repeat the field.")] = None,
    mapping_project_id: Annotated[
        int | None, Form(description="Review project deciding which codes are mapped.")
    ] = None,
    mapped_columns: Annotated[list[str] | None, Form(description="Code columns that project maps.")] = None,
    dask_scheduler: Annotated[
        str | None,
        Form(
            description="Dask cluster (tcp://HOST:PORT, local:N) that profiles this feed's large batches; "
            "default: CROSSWALK_DASK_SCHEDULER."
        ),
    ] = None,
    fields_project_id: Annotated[
        int | None, Form(description="Field-mapping project whose approved mappings say what the columns are.")
    ] = None,
) -> FeedPublic:
    """Register a feed from its reference batch; the data contract is inferred (roles from the field project's
    approved mappings win over inference) and can be edited."""
    data = crud_feeds.valid_feed(
        name=name,
        description=description,
        segment_columns=segment_columns or None,
        mapping_project_id=mapping_project_id,
        mapped_columns=mapped_columns or [],
        dask_scheduler=dask_scheduler or None,
        fields_project_id=fields_project_id,
    )
    feed = crud_feeds.create_feed(session, home, data, _upload(file), principal.name)
    return crud_feeds.feed_public(session, feed)


@router.get("", response_model=list[FeedPublic], **allow(Permission.read))
def list_feeds(session: SessionDep) -> list[FeedPublic]:
    """List feeds with their batch count and active alerts per severity."""
    return [crud_feeds.feed_public(session, f) for f in crud_feeds.list_feeds(session)]


@router.get("/{feed}", response_model=FeedPublic, **allow(Permission.read, 404))
def get_feed_route(feed: FeedDep, session: SessionDep, response: Response) -> FeedPublic:
    """One feed; the ETag is its version (send it as If-Match when editing the contract)."""
    response.headers["ETag"] = f'"{feed.version}"'
    return crud_feeds.feed_public(session, feed)


@router.patch("/{feed}", response_model=FeedPublic, **allow(Permission.monitor, 404, 409, 422))
def update_feed(
    feed: FeedDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    home: HomeDep,
    if_match: IfMatch,
    response: Response,
    data: crud_feeds.FeedUpdate,
) -> FeedPublic:
    """Link (or with null unlink) a field-mapping project, or drop an explicitly set contract: an inferred
    contract is inferred again with the approved mappings' roles (If-Match: the feed version)."""
    feed = crud_feeds.update_feed(session, home, feed, data, principal.name, if_match)
    response.headers["ETag"] = f'"{feed.version}"'
    return crud_feeds.feed_public(session, feed)


@router.get("/{feed}/contract", response_model=dict[str, Any], **allow(Permission.read, 404))
def get_contract(feed: FeedDep, response: Response) -> dict[str, Any]:
    """The feed's data contract: column kinds and the reason for each (inferred from the values, or the approved
    field mapping it came from), segment columns, value+unit pairs, row keys, the patient column."""
    response.headers["ETag"] = f'"{feed.version}"'
    return feed.contract


@router.put("/{feed}/contract", response_model=dict[str, Any], **allow(Permission.monitor, 404, 409, 422))
def put_contract(
    feed: FeedDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    home: HomeDep,
    if_match: IfMatch,
    response: Response,
    contract: Annotated[dict[str, Any], Body(description="The whole contract, as GET returns it, edited.")],
) -> dict[str, Any]:
    """Replace the data contract; the reference is re-profiled under it (If-Match: the feed version)."""
    feed = crud_feeds.update_contract(session, home, feed, contract, principal.name, if_match)
    response.headers["ETag"] = f'"{feed.version}"'
    return feed.contract


# -- webhooks ---------------------------------------------------------------------------------------
@router.post(
    "/{feed}/webhooks", status_code=201, response_model=WebhookPublic, **allow(Permission.monitor, 404, 409, 422)
)
def add_webhook(
    feed: FeedDep, session: SessionDep, principal: CurrentPrincipal, home: HomeDep, data: WebhookCreate
) -> WebhookPublic:
    """Send the feed's alert events (opened, escalated, resolved) to a URL, signed with HMAC-SHA256."""
    return WebhookPublic.model_validate(crud_feeds.add_webhook(session, home, feed, data, principal.name))


@router.get("/{feed}/webhooks", response_model=list[WebhookPublic], **allow(Permission.read, 404))
def list_webhooks(feed: FeedDep, session: SessionDep) -> list[WebhookPublic]:
    """The feed's webhooks, without their secrets."""
    return [WebhookPublic.model_validate(w) for w in crud_feeds.list_webhooks(session, feed)]


@router.get("/{feed}/deliveries", response_model=list[DeliveryPublic], **allow(Permission.read, 404, 422))
def list_deliveries(
    feed: FeedDep,
    session: SessionDep,
    status: Annotated[str | None, Query(description="pending, delivered or dead.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryPublic]:
    """The webhook outbox of the feed, newest first: attempts, status, last error."""
    return [DeliveryPublic.model_validate(d) for d in outbox.list_deliveries(session, feed, status, limit)]


@router.post("/{feed}/deliveries", response_model=DeliveryResult, **allow(Permission.monitor, 404))
def deliver_now(feed: FeedDep, session: SessionDep, request: Request) -> DeliveryResult:
    """Post the feed's due webhook messages now (one attempt each); returns the outbox counts."""
    session.commit()  # end the request's transaction: each attempt commits on its own (SQLite: one writer)
    return outbox.deliver(request.app.state.engine, request.app.state.settings.home, feed.id)


# -- batches ----------------------------------------------------------------------------------------
@router.post(
    "/{feed}/batches",
    status_code=201,
    response_model=BatchPublic,
    **allow(Permission.monitor, 404, 409, 413, 422, 503),
)
async def post_batch(
    feed: FeedDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    home: HomeDep,
    request: Request,
    background: BackgroundTasks,
    file: Annotated[
        UploadFile,
        File(description="A batch: CSV, Parquet or FHIR NDJSON (Observation, Condition, MedicationRequest)."),
    ],
) -> BatchPublic:
    """Score a batch against the reference; alerts are deduplicated, webhooks notified after the response.
    A large CSV or Parquet batch is profiled on the feed's Dask cluster (503 when it does not answer)."""
    upload = await anyio.to_thread.run_sync(_upload, file)
    scheduler = crud_feeds.cluster_for_upload(request.app.state.settings, feed, upload)
    if scheduler is not None:
        # roles approved since the last batch reach the contract first: the batch is profiled under it
        await anyio.to_thread.run_sync(crud_feeds.refresh_field_roles, session, home, feed, principal.name)
        contract = Contract.from_dict(feed.contract)
        async with away_from_store(request, session):
            upload = await anyio.to_thread.run_sync(crud_feeds.profile_upload, home, feed, contract, upload, scheduler)
    batch, events = await anyio.to_thread.run_sync(crud_feeds.post_batch, session, home, feed, upload, principal.name)
    if any(e.kind in NOTIFY for e in events):
        _deliver_later(background, request, feed.id)
    return crud_feeds.batch_public(batch)


@router.get("/{feed}/batches", response_model=list[BatchPublic], **allow(Permission.read, 404, 422))
def list_batches(
    feed: FeedDep,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BatchPublic]:
    """The feed's batches, newest first, with their alert summary."""
    return [crud_feeds.batch_public(b) for b in crud_feeds.list_batches(session, feed, offset, limit)]


@router.get("/{feed}/batches/{number}", response_model=BatchPublic, **allow(Permission.read, 404, 422))
def get_batch(feed: FeedDep, session: SessionDep, number: int) -> BatchPublic:
    """One batch with the alerts it opened or updated."""
    return crud_feeds.batch_public(crud_feeds.get_batch(session, feed, number))


@router.get(
    "/{feed}/batches/{number}/report",
    response_class=FileResponse,
    **allow(Permission.read, 404, 422, ok={"description": "Evidently's HTML report.", "content": {"text/html": {}}}),
)
def get_batch_report(feed: FeedDep, session: SessionDep, home: HomeDep, number: int) -> FileResponse:
    """The batch's Evidently DataDriftPreset report (HTML) for drill-down."""
    path = crud_feeds.report_html(home, feed, crud_feeds.get_batch(session, feed, number))
    return FileResponse(path, media_type="text/html", headers=REPORT_HEADERS)


@router.get("/{feed}/window", response_model=dict[str, Any], **allow(Permission.read, 404, 422))
def window(
    feed: FeedDep,
    session: SessionDep,
    home: HomeDep,
    first: Annotated[int, Query(ge=1, description="First batch number of the window.")],
    last: Annotated[int, Query(ge=1, description="Last batch number of the window.")],
) -> dict[str, Any]:
    """Score a window of batches as one (a merge of their kept profiles) against the reference."""
    return crud_feeds.window_report(session, home, feed, first, last)


# -- alerts -----------------------------------------------------------------------------------------
@router.get("/{feed}/alerts", response_model=AlertPage, **allow(Permission.read, 404, 422))
def list_alerts(
    feed: FeedDep,
    session: SessionDep,
    status: Annotated[
        str | None, Query(description="open, acknowledged, resolved, or active (open + acknowledged).")
    ] = None,
    severity: Annotated[str | None, Query(description="info, warning or critical.")] = None,
    segment: Annotated[str | None, Query(description="A segment value (site), or * for the whole feed.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertPage:
    """The feed's alerts, newest first; one per (segment, check, column) while active."""
    return feed_alerts.list_alerts(session, feed, status, severity, segment, offset, limit)


@router.post("/{feed}/alerts/{uid}/acknowledge", response_model=AlertPublic, **allow(Permission.monitor, 404, 409))
def acknowledge_alert(feed: FeedDep, session: SessionDep, principal: CurrentPrincipal, uid: str) -> AlertPublic:
    """Acknowledge an open alert: someone is on it; later batches still update it."""
    row, _ = feed_alerts.acknowledge(session, feed, uid, principal.name)
    return feed_alerts.alert_public(row, feed)


@router.post("/{feed}/alerts/{uid}/resolve", response_model=AlertPublic, **allow(Permission.monitor, 404, 409))
def resolve_alert(
    feed: FeedDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    uid: str,
    request: Request,
    background: BackgroundTasks,
) -> AlertPublic:
    """Resolve an alert by hand; webhooks hear of it. A batch still showing the problem opens a new one."""
    row, event = feed_alerts.resolve(session, feed, uid, principal.name)
    if outbox.queue_events(session, feed, [event], principal.name):
        _deliver_later(background, request, feed.id)
    return feed_alerts.alert_public(row, feed)
