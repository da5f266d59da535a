"""The ops pages: feeds, latest batches, active alerts by severity, acknowledge/resolve through the
monitoring crud (audited), the drill-down plots and the sandboxed Evidently report."""

from __future__ import annotations

import html
import re

import pytest

from service import audit
from service.store.db import session_scope
from service.store.tables import Role
from tests.service.conftest import WEBHOOK_SECRET
from tests.ui.conftest import csrf_of, login


@pytest.fixture
def ui_service(seeded):
    """The seeded store (a project and the st-mary-labs feed with alerts), copied for this test."""
    return seeded[0]


def _alerts(service, **params) -> list[dict]:
    return service.call("GET", "/feeds/st-mary-labs/alerts", Role.viewer, params=params).json()["alerts"]


def test_ops_lists_feeds_batches_and_active_alerts_most_severe_first(ui_service):
    client = login(ui_service, Role.viewer)
    page = html.unescape(client.get("/ui/ops").text)
    assert "st-mary-labs" in page and "#3" in page and "wednesday" not in page  # batches by number
    active = _alerts(ui_service, status="active")
    assert active, "the seeded batches raise alerts"
    shown = re.findall(r'<span class="chip sev-(\w+)">\1</span></td><td>st-mary-labs', page)
    order = {"critical": 0, "warning": 1, "info": 2}
    assert len(shown) == len(active) and shown == sorted(shown, key=order.get)
    assert "can see the alerts but not acknowledge" in page and "Acknowledge</button>" not in page


def test_ops_acknowledges_and_resolves_through_the_audited_crud(ui_service):
    [alert] = [a for a in _alerts(ui_service, status="open") if a["check"] == "unit_change"]
    client = login(ui_service, Role.ops)
    page = client.get("/ui/ops").text
    url = f"/ui/ops/feeds/st-mary-labs/alerts/{alert['uid']}"
    ack = client.post(f"{url}/acknowledge", data={"csrf": csrf_of(page), "back": "/ui/ops"}, follow_redirects=False)
    assert ack.status_code == 303 and ack.headers["location"] == "/ui/ops"
    again = client.post(f"{url}/acknowledge", data={"csrf": csrf_of(page)})
    assert again.status_code == 409 and "only an open alert can be acknowledged" in html.unescape(again.text)
    assert client.post(f"{url}/resolve", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"{url}/resolve", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
    [now] = [a for a in _alerts(ui_service) if a["uid"] == alert["uid"]]
    assert (now["status"], now["acknowledged_by"], now["resolved_by"]) == ("resolved", "ops-1", "ops-1")
    with session_scope(ui_service.engine) as session:
        actions = [(e.action, e.actor) for e in audit.history(session) if e.entity.startswith("feed_alert:")][-2:]
        assert [a for _, a in actions] == ["ops-1", "ops-1"] and audit.verify(session).ok


def test_a_reviewer_cannot_acknowledge(ui_service):
    [alert] = _alerts(ui_service, status="open")[:1]
    client = login(ui_service, Role.reviewer)
    page = client.get("/ui/ops").text
    response = client.post(
        f"/ui/ops/feeds/st-mary-labs/alerts/{alert['uid']}/acknowledge", data={"csrf": csrf_of(page)}
    )
    assert response.status_code == 403 and "may not monitor" in html.unescape(response.text)
    assert [a for a in _alerts(ui_service) if a["uid"] == alert["uid"]][0]["status"] == "open"


def test_the_drill_down_plots_missingness_and_drift_per_segment(ui_service):
    client = login(ui_service, Role.viewer)
    page = html.unescape(client.get("/ui/ops/feeds/st-mary-labs?column=value_as_number").text)
    assert page.count('<svg class="plot"') == 2
    for segment in ("all rows", "north", "south"):
        assert segment in page
    # north lost half its values in batch 3: the table under the plots says so, the others did not
    north = re.search(r'<th scope="row">north</th><td>missing</td>(.*?)</tr>', page).group(1)
    values = [float(v) for v in re.findall(r">([\d.]+)%<", north)]
    assert len(values) == 3 and values[0] == values[1] and values[2] > values[1] + 20
    assert "north, batch 3: " in page  # each point has a tooltip
    units = html.unescape(client.get("/ui/ops/feeds/st-mary-labs?column=unit_source_value").text)
    assert "<option selected>unit_source_value</option>" in units and "population stability index" in units
    south = re.search(r'<th scope="row">south</th><td>drift</td>(.*?)</tr>', units).group(1)
    psi = [float(v) for v in re.findall(r">([\d.]+)<", south)]
    assert psi[1] > 0.2 > psi[0]  # site south switched to pounds in batch 2: its unit mix jumps


def test_the_alert_drill_down_embeds_the_batchs_evidently_report_sandboxed(ui_service):
    [alert] = [a for a in _alerts(ui_service, status="open") if a["check"] == "unit_change"]
    client = login(ui_service, Role.viewer)
    page = client.get(f"/ui/ops/feeds/st-mary-labs/alerts/{alert['uid']}").text
    src = re.search(r'<iframe class="report"[^>]* sandbox="allow-scripts" src="([^"]+)"', page).group(1)
    assert src == f"/ui/ops/feeds/st-mary-labs/batches/{alert['last_batch']}/report"
    report = client.get(src)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert "value_as_number" in report.text


def test_a_resolve_in_the_ui_tells_the_webhooks_as_the_api_does(ui_service, local_webhooks):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "secret": WEBHOOK_SECRET}
        assert ui_service.call("POST", "/feeds/st-mary-labs/webhooks", Role.ops, json=hook).status_code == 201
        [alert] = [a for a in _alerts(ui_service, status="open") if a["check"] == "unit_change"]
        client = login(ui_service, Role.ops)
        page = client.get("/ui/ops").text
        url = f"/ui/ops/feeds/st-mary-labs/alerts/{alert['uid']}/resolve"
        assert client.post(url, data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
    finally:
        server.shutdown()
        server.server_close()
    assert [(m["event"], m["alert"]["id"]) for m in received] == [("resolved", alert["uid"])]
