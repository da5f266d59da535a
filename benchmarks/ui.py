"""Review UI render times: p50/p95 of each page a reviewer or an ops person waits for, over HTTP.

Starts `crosswalk serve` (as benchmarks/api.py does: an ephemeral port, a fresh store, the instant
word-overlap suggester) with a project of `--items` source codes with suggestions, two releases and a
monitored feed with alerts; logs in through the login form like a browser; then times

- the queue page (50 rows, ordered by expected value), the item page and the history page,
- a keyboard decision: the POST (audited write, 303) and the next item's page, and the two together,
- a release diff page, the ops page and an alert drill-down (SVG plots from kept profiles).

The goal: every page or fragment p95 <= 150 ms on this machine.

    python benchmarks/ui.py [--items 2000] [--decisions 200] [--views 100] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api import PG_DEFAULT, SPECIMENS, WORDS, admin_token, pg_schema, server  # noqa: E402

GOAL_MS = 150.0
MEASUREMENTS = REPO / "data" / "samples" / "monitoring" / "measurements.csv"
DECIDE_FORM = re.compile(r'<form id="decide" method="post" action="([^"]+)">(.*?)</form>', re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000, help="Source codes in the project.")
    parser.add_argument("--decisions", type=int, default=200, help="Keyboard decisions timed (POST + next page).")
    parser.add_argument("--views", type=int, default=100, help="Timed views of each read-only page.")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("CROSSWALK_TEST_POSTGRES_URL", PG_DEFAULT))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            timings = run(f"sqlite:///{Path(tmp) / 'ui.db'}", args)
        else:
            with pg_schema(args.pg_url) as url:
                timings = run(url, args)
    report(timings, args)


def run(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        token = admin_token(url, home)
        with server(url, home, real=False) as base:
            api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300)
            project = seed_project(api, args.items)
            alert = seed_feed(api)
            browser = login(base, token)
            timings = time_reviewing(browser, project, args.decisions)
            seed_releases(api, project)
            timings |= time_pages(browser, project, alert, args.views)
    return timings


# -- seeding through the API ---------------------------------------------------------------------------
def seed_project(api: httpx.Client, items: int) -> int:
    body = {"name": "bench-ui", "source_system": "bench LIS", "target_terminology": "bench"}
    project = ok(api.post("/projects", json=body)).json()["id"]
    rows = "".join(
        f"L{i:05d},{WORDS[i % len(WORDS)]} {SPECIMENS[i % len(SPECIMENS)]} test {i},{(i * 7919) % 1000},{SPECIMENS[i % 3]}\n"
        for i in range(items)
    )
    files = {"file": ("codes.csv", ("source_code,source_text,frequency,domain\n" + rows).encode(), "text/csv")}
    ok(api.post(f"/projects/{project}/imports", files=files))
    codes = [f"L{i:05d}" for i in range(items)]
    for start in range(0, items, 250):
        ok(api.post(f"/projects/{project}/suggestions", json={"codes": codes[start : start + 250], "top_k": 5}))
    return project


def seed_releases(api: httpx.Client, project: int) -> None:
    """Release 1 after the timed decisions, then 50 more approvals and release 2: a diff to render."""
    ok(api.post(f"/projects/{project}/releases", json={"note": "bench 1"}))
    page = ok(api.get(f"/projects/{project}/items", params={"status": "suggested", "limit": 50})).json()["items"]
    for item in page:
        body = {"action": "approve", "version": item["version"]}
        ok(api.post(f"/projects/{project}/items/{item['code']}/decisions", json=body))
    ok(api.post(f"/projects/{project}/releases", json={"note": "bench 2"}))


def seed_feed(api: httpx.Client) -> str:
    """The lab sample as a feed with six batches, the last three with site south in pounds: an alert."""
    import pandas as pd

    frame = pd.read_csv(MEASUREMENTS)
    reference = frame.sample(frac=0.5, random_state=0)
    files = {"file": ("reference.csv", reference.to_csv(index=False).encode())}
    ok(api.post("/feeds", data={"name": "bench-labs", "segment_columns": ["site"]}, files=files))
    for number in range(6):
        batch = frame.sample(frac=0.5, random_state=number + 1)
        if number >= 3:
            south = (batch.site == "south") & (batch.measurement_source_value == "29463-7")
            batch.loc[south, "unit_source_value"] = "[lb_av]"
            batch.loc[south, "value_as_number"] *= 2.2046
        ok(
            api.post(
                "/feeds/bench-labs/batches", files={"file": (f"b{number}.csv", batch.to_csv(index=False).encode())}
            )
        )
    alerts = ok(api.get("/feeds/bench-labs/alerts", params={"status": "active"})).json()["alerts"]
    return alerts[0]["uid"]


def login(base: str, token: str) -> httpx.Client:
    browser = httpx.Client(base_url=base, timeout=60)
    page = ok(browser.get("/ui/login"))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = browser.post("/ui/login", data={"token": token, "csrf": csrf, "next": "/ui/"})
    if response.status_code != 303:
        raise SystemExit(f"login failed: {response.status_code}")
    return browser


# -- timing ------------------------------------------------------------------------------------------------
def time_reviewing(browser: httpx.Client, project: int, decisions: int) -> dict[str, list[float]]:
    """The keyboard loop: read the item page, POST the decision, load the next item page."""
    post_s, next_s = [], []
    page = ok(browser.get(f"/ui/projects/{project}/review"))
    for _ in range(decisions):
        action, fields = decide_form(page.text)
        started = time.perf_counter()
        response = browser.post(action, data={**fields, "choice": "approve"})
        posted = time.perf_counter()
        if response.status_code != 303:
            raise SystemExit(f"decision refused: {response.status_code} {response.text[:300]}")
        page = ok(browser.get(response.headers["location"]))
        post_s.append(posted - started)
        next_s.append(time.perf_counter() - posted)
    return {
        "decision POST (audited write, 303)": post_s,
        "next item page after a decision": next_s,
        "decision round trip (POST + next page)": [a + b for a, b in zip(post_s, next_s)],
    }


def decide_form(html: str) -> tuple[str, dict[str, str]]:
    match = DECIDE_FORM.search(html)
    if match is None:
        raise SystemExit("the review page has no decision form (nothing left to review?)")
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', match.group(2)))
    return match.group(1), fields


def time_pages(browser: httpx.Client, project: int, alert: str, views: int) -> dict[str, list[float]]:
    pages: dict[str, Callable[[int], str]] = {
        "queue page (50 rows)": lambda i: f"/ui/projects/{project}?offset={(i % 10) * 50}",
        "item page (review)": lambda i: f"/ui/projects/{project}/review?pos={i % 500}",
        "item history page": lambda i: f"/ui/projects/{project}/items/L{i:05d}/history",
        "release diff page (2 vs 1)": lambda i: f"/ui/projects/{project}/releases/2",
        "ops page": lambda i: "/ui/ops",
        "alert drill-down (SVG plots)": lambda i: f"/ui/ops/feeds/bench-labs/alerts/{alert}",
    }
    return {name: [timed_get(browser, path(i)) for i in range(views)] for name, path in pages.items()}


def timed_get(browser: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    ok(browser.get(path))
    return time.perf_counter() - started


def ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
        )
    return response


def report(timings: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.items} source codes, {args.decisions} keyboard decisions, {args.views} views per page, {args.backend}"
    )
    print(f"{'page':<42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  goal p95 <= {GOAL_MS:.0f} ms")
    for name, durations in timings.items():
        p50 = statistics.median(durations) * 1000
        p95 = statistics.quantiles(durations, n=20, method="inclusive")[-1] * 1000
        verdict = "ok" if p95 <= GOAL_MS else "OVER"
        print(f"{name:<42} {p50:>8.1f} {p95:>8.1f} {max(durations) * 1000:>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
