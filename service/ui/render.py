"""Templates, the page response with its security headers, and small formatting helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from service.exports.formats import FORMATS
from service.web.roles import Permission

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
# Pages load only their own CSS and JS: no inline script, no third-party origin, no framing.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show PHI-adjacent source texts: never kept by a shared cache
}
RELATIONSHIPS = {
    "equivalent": "equivalent",
    "source-is-narrower-than-target": "source narrower than target",
    "source-is-broader-than-target": "source broader than target",
    "related-to": "related",
}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _when(value: str | None) -> str:
    """ISO timestamps as 'YYYY-MM-DD HH:MM:SS UTC' (the store keeps UTC)."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19] + " UTC"


def _percent(value: float | None) -> int:
    return 0 if value is None else max(0, min(100, round(float(value) * 100)))


# Bookkeeping fields a history line leaves out: they change with every event.
QUIET_FIELDS = {"id", "version", "project_id", "decided_at"}


def _changes(event: Any) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for what an audit event changed; a creation lists what it set."""
    before, after = event.before or {}, event.after or {}
    names = [k for k in after if k not in QUIET_FIELDS and before.get(k) != after.get(k)]
    return [
        (k, _plain(before.get(k)) if event.before else None, _plain(after.get(k)))
        for k in names
        if after.get(k) not in (None, {}, []) or event.before
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


templates.env.filters["changes"] = _changes
templates.env.filters["score"] = _score
templates.env.filters["when"] = _when
templates.env.filters["percent"] = _percent
templates.env.globals["RELATIONSHIPS"] = RELATIONSHIPS
templates.env.globals["Permission"] = Permission  # macros (imported without context) check roles too
templates.env.globals["EXPORT_FORMATS"] = FORMATS
