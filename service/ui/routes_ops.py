"""Ops: feeds, their latest batches and open alerts (placeholder until the monitoring crud lands)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.ui.render import render
from service.ui.session import BrowserDep

router = APIRouter(prefix="/ui/ops", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def ops_page(request: Request, browser: BrowserDep) -> HTMLResponse:
    return render(request, "error.html", browser=browser, status=200, title="Ops", detail="coming soon")
