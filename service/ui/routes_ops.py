"""Ops: feeds, their latest batches, open alerts by severity, acknowledge/resolve, and a drill-down with
missingness and drift over time per segment and the batch's Evidently report.

Acknowledge and resolve call the monitoring crud the API calls (`service.monitoring.alerts`), and a
resolve queues its webhook event through the same outbox, as POST /feeds/{feed}/alerts/{uid}/resolve does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlmodel import Session

from monitors.checks import base_column
from monitors.checks.base import severity_rank
from service.monitoring import alerts as feed_alerts
from service.monitoring import feeds as crud_feeds
from service.monitoring import outbox
from service.store.errors import StoreError
from service.store.feeds import AlertPublic, Feed
from service.ui import ops_data, plots
from service.ui.render import render
from service.ui.session import Browser, BrowserDep, FormDep, safe_next
from service.web.deps import SessionDep
from service.web.roles import Permission

router = APIRouter(prefix="/ui/ops", include_in_schema=False)
log = logging.getLogger("crosswalk.ui")
LATEST_BATCHES = 10
# The Evidently report runs its own inline scripts: served sandboxed (a unique origin, no cookies, no
# access to the page around it), with nothing loaded from the network.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)


def _home(request: Request) -> Path:
    return request.app.state.settings.home


@router.get("", response_class=HTMLResponse)
def ops_page(request: Request, browser: BrowserDep, session: SessionDep) -> HTMLResponse:
    feeds = crud_feeds.list_feeds(session)
    return render(
        request,
        "ops.html",
        browser=browser,
        section="ops",
        feeds=[(crud_feeds.feed_public(session, f), _latest(session, f)) for f in feeds],
        alerts=_active_alerts(session, feeds),
        batches=_latest_batches(session, feeds),
    )


def _latest(session: Session, feed: Feed):
    batches = crud_feeds.list_batches(session, feed, 0, 1)
    return batches[0] if batches else None


def _active_alerts(session: Session, feeds: list[Feed]) -> list[tuple[Feed, AlertPublic]]:
    found = [(f, a) for f in feeds for a in feed_alerts.list_alerts(session, f, "active", limit=1000).alerts]
    found.sort(key=lambda fa: fa[1].last_seen, reverse=True)  # newest first within each group (sorts are stable)
    return sorted(found, key=lambda fa: (fa[1].status != "open", -severity_rank(fa[1].severity)))


def _latest_batches(session: Session, feeds: list[Feed]) -> list[tuple[Feed, Any]]:
    found = [(f, b) for f in feeds for b in crud_feeds.list_batches(session, f, 0, LATEST_BATCHES)]
    return sorted(found, key=lambda fb: fb[1].received_at, reverse=True)[:LATEST_BATCHES]


@router.get("/feeds/{feed_ref}", response_class=HTMLResponse)
def feed_page(
    request: Request,
    browser: BrowserDep,
    session: SessionDep,
    feed_ref: str,
    column: str | None = None,
    batch: int | None = None,
):
    feed = crud_feeds.get_feed(session, feed_ref)
    active = feed_alerts.list_alerts(session, feed, "active", limit=1000).alerts
    columns = ops_data.plottable_columns(feed)
    chosen = column if column in columns else _default_column(active, columns)
    batches = crud_feeds.list_batches(session, feed, 0, 50)
    shown = next((b for b in batches if b.number == batch), batches[0] if batches else None)
    return render(
        request,
        "ops_feed.html",
        browser=browser,
        section="ops",
        feed=crud_feeds.feed_public(session, feed),
        alerts=active,
        columns=columns,
        column=chosen,
        batches=batches,
        shown=shown,
        **_plots(session, _home(request), feed, chosen),
    )


def _default_column(active: list[AlertPublic], columns: list[str]) -> str | None:
    for alert in sorted(active, key=lambda a: -severity_rank(a.severity)):
        if base_column(alert.column) in columns:
            return base_column(alert.column)
    return columns[0] if columns else None


def _plots(session: Session, home: Path, feed: Feed, column: str | None) -> dict[str, Any]:
    if column is None:
        return {"history": None}
    history = ops_data.column_history(session, home, feed, column)
    missing = plots.line_chart(
        f"Missing values of {column} per batch and segment",
        history.batches,
        plots.lines_for(history.missing),
        "missing (share of rows)",
        percent=True,
    )
    drift = plots.line_chart(
        f"Drift of {column} from the reference per batch and segment",
        history.batches,
        plots.lines_for(history.drift),
        history.drift_label,
        threshold=history.drift_threshold,
    )
    return {
        "history": history,
        "missing_plot": missing,
        "drift_plot": drift,
        "legend": plots.lines_for(history.missing),
        "swatch": plots.swatch,
    }


@router.get("/feeds/{feed_ref}/alerts/{uid}", response_class=HTMLResponse)
def alert_page(request: Request, browser: BrowserDep, session: SessionDep, feed_ref: str, uid: str) -> HTMLResponse:
    return _alert(request, browser, session, feed_ref, uid)


def _alert(
    request: Request,
    browser: Browser,
    session: Session,
    feed_ref: str,
    uid: str,
    error: str | None = None,
    status_code: int = 200,
):
    feed = crud_feeds.get_feed(session, feed_ref)
    alert = feed_alerts.alert_public(feed_alerts.get_alert(session, feed, uid), feed)
    column = base_column(alert.column)
    batch = _batch_or_none(session, feed, alert.last_batch)
    return render(
        request,
        "ops_alert.html",
        status_code,
        browser=browser,
        section="ops",
        feed=crud_feeds.feed_public(session, feed),
        alert=alert,
        column=column,
        batch=batch,
        error=error,
        **_plots(session, _home(request), feed, column if column in ops_data.plottable_columns(feed) else None),
    )


def _batch_or_none(session: Session, feed: Feed, number: str):
    try:
        return crud_feeds.get_batch(session, feed, int(number)) if number.isdigit() else None
    except StoreError:
        return None


@router.post("/feeds/{feed_ref}/alerts/{uid}/{action}", response_class=HTMLResponse)
def act_on_alert(
    request: Request,
    browser: BrowserDep,
    session: SessionDep,
    form: FormDep,
    background: BackgroundTasks,
    feed_ref: str,
    uid: str,
    action: str,
):
    try:
        browser.require(Permission.monitor)
        feed = crud_feeds.get_feed(session, feed_ref)
        _apply(request, session, background, feed, uid, action, browser.principal.name)
    except StoreError as error:
        session.rollback()
        return _alert(request, browser, session, feed_ref, uid, error.detail, error.status)
    return RedirectResponse(
        safe_next(form.get("back")) if form.get("back") else f"/ui/ops/feeds/{feed_ref}/alerts/{uid}", status_code=303
    )


def _apply(
    request: Request, session: Session, background: BackgroundTasks, feed: Feed, uid: str, action: str, actor: str
) -> None:
    if action == "acknowledge":
        feed_alerts.acknowledge(session, feed, uid, actor)
    elif action == "resolve":
        _, event = feed_alerts.resolve(session, feed, uid, actor)
        if outbox.queue_events(session, feed, [event], actor):  # webhooks hear of it, as through the API
            background.add_task(_deliver, request.app, feed.id)
    else:
        raise StoreError(f"unknown alert action {action!r}; acknowledge or resolve")


def _deliver(app, feed_id: int) -> None:
    try:
        outbox.deliver(app.state.engine, app.state.settings.home, feed_id, 10.0)
    except Exception as error:  # the messages stay pending; the service's worker retries them
        log.error("webhook delivery after a resolve failed: %s", type(error).__name__)


@router.get("/feeds/{feed_ref}/batches/{number}/report")
def batch_report(
    request: Request, browser: BrowserDep, session: SessionDep, feed_ref: str, number: int
) -> FileResponse:
    feed = crud_feeds.get_feed(session, feed_ref)
    path = crud_feeds.report_html(_home(request), feed, crud_feeds.get_batch(session, feed, number))
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    return FileResponse(path, media_type="text/html", headers=headers)
