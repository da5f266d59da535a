"""Review-service throughput: suggestions and decisions per second, and p95 latency, over HTTP.

Starts `crosswalk serve` on 127.0.0.1 (an ephemeral port) against a fresh SQLite file and a fresh
PostgreSQL schema, then drives it with bounded loops. By default the server ranks with a tiny
word-overlap suggester, so the figures are the service's and the store's cost (auth, audit chain,
transactions), not the model's; `--real` uses the bundled engine and a loaded terminology instead.

    python benchmarks/api.py [--items 300] [--backend sqlite|postgres|both] [--real --terminology icd10cm]
    python benchmarks/api.py --concurrency 16,64,256 [--backend ...] [--workers 1,2]

`--concurrency` drives the server with that many clients at once instead (one level after another):
item reads and decisions (each on its own item), printing requests/s, p50/p95 latency and errors
(any status other than 200, or no answer within --timeout). The lowest level is the baseline: the run
fails if any request errs or a higher level's throughput falls below 80% of the baseline's (a collapse,
not noise). `--workers 1,2` runs the load once per worker count (`serve --workers N`; PostgreSQL only,
SQLite runs one) and prints each count's requests/s against one worker's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.items import Suggestion  # noqa: E402
from models.terminology import Concept, Terminology  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WORDS = "glucose sodium potassium chloride urea creatinine albumin bilirubin calcium iron ferritin lipase".split()
SPECIMENS = "serum plasma blood urine csf".split()


class WordSuggester:
    """Word overlap over a synthetic terminology: instant, so the benchmark measures the service."""

    model_version = "bench-words@1"

    def __init__(self) -> None:
        concepts = [
            Concept(f"B{i:04d}", f"{w} {s} panel {i}")
            for i, (w, s) in enumerate((w, s) for w in WORDS for s in SPECIMENS)
        ]
        self.terminology = Terminology("bench", "test", "1", concepts)

    def suggest(self, items, top_k: int = 10, where=None):
        return [self.search(item.text, top_k) for item in items]

    def search(self, text: str, top_k: int = 10, where=None):
        words = set(re.findall(r"[a-z]+", text.lower()))
        scored = sorted(self.terminology, key=lambda c: (-len(words & set(c.display.split())), c.code))[:top_k]
        return [
            Suggestion(c.code, c.display, 0.5, r, {"lexical": 0.5, "semantic": 0.5}) for r, c in enumerate(scored, 1)
        ]


def bench_suggester_factory(terminology: str) -> WordSuggester:
    return WordSuggester()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    schema = f"cw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def server(url: str, home: Path, real: bool, workers: int = 1) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CROSSWALK_HOME": str(home), "CROSSWALK_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", "from service.cli import main; main()", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    command += ["--log-level", "warning"]  # a log line per request would cost the server time the figures measure
    if not real:
        command += ["--suggester-factory", "benchmarks.api:bench_suggester_factory"]
    process = subprocess.Popen(command, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"crosswalk serve exited with status {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"crosswalk serve did not answer on {base} within {timeout:.0f} s")


def admin_token(url: str, home: Path) -> str:
    env = {**os.environ, "CROSSWALK_HOME": str(home), "CROSSWALK_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-c", "from service.cli import main; main()"]
    subprocess.run(
        [*cli, "db", "upgrade"], env=env, cwd=REPO, capture_output=True, check=True
    )  # a new PostgreSQL schema
    command = [*cli, "token", "create", "--role", "admin", "--name", "bench"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def run_backend(name: str, url: str, items: int, batch: int, real: bool, terminology: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        token = admin_token(url, home)
        with (
            server(url, home, real) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client,
        ):
            project = _project(client, items, terminology)
            codes = [f"L{i:05d}" for i in range(items)]
            suggest_s = _timed(
                lambda chunk: client.post(f"/projects/{project}/suggestions", json={"codes": chunk, "top_k": 5}),
                _chunks(codes, batch),
            )
            versions = {
                i["code"]: i["version"]
                for i in client.get(f"/projects/{project}/items", params={"limit": items}).json()["items"]
            }
            decide_s = _timed(lambda code: _decide(client, project, code, versions[code]), codes)
    return {
        "backend": name,
        "suggest_items_per_s": items / sum(suggest_s),
        "suggest_p95_ms": _p95(suggest_s) * 1000,
        "decisions_per_s": len(decide_s) / sum(decide_s),
        "decide_p95_ms": _p95(decide_s) * 1000,
    }


def run_load(name: str, url: str, levels: list[int], timeout: float, workers: int = 1) -> list[dict]:
    """Reads and decisions at each concurrency level, on one server (of `workers` processes) and one project."""
    per_level = [max(4 * n, 400) for n in levels]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        token = admin_token(url, home)
        headers = {"Authorization": f"Bearer {token}"}
        with (
            server(url, home, real=False, workers=workers) as base,
            httpx.Client(base_url=base, headers=headers, timeout=300) as client,
        ):
            project = _project(client, sum(per_level), "bench")
            codes = iter(f"L{i:05d}" for i in range(sum(per_level)))
            # unmeasured: every worker process is up and has its connections before the first level
            warm_up = [("GET", f"/projects/{project}/items/L{i % 100:05d}", None) for i in range(200)]
            asyncio.run(_drive(base, headers, warm_up, min(levels), timeout))
            rows = []
            for clients, requests in zip(levels, per_level, strict=True):
                reads = [("GET", f"/projects/{project}/items/L{i % 100:05d}", None) for i in range(requests)]
                decide = {"action": "remap", "target_code": "B0000", "version": 1}
                paths = (f"/projects/{project}/items/{next(codes)}/decisions" for _ in range(requests))
                writes = [("POST", path, decide) for path in paths]
                for kind, calls in (("reads", reads), ("decisions", writes)):
                    figures = asyncio.run(_drive(base, headers, calls, clients, timeout))
                    rows.append({"backend": name, "workers": workers, "kind": kind, "clients": clients, **figures})
                    print(_load_line(rows[-1]), flush=True)
    return rows


async def _drive(base: str, headers: dict, calls: list[tuple], clients: int, timeout: float) -> dict:
    """`calls` by `clients` concurrent workers; latencies of the answered ones, errors of all."""
    pending = iter(calls)
    latencies: list[float] = []
    errors: Counter[str] = Counter()  # status or exception -> count
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(client: httpx.AsyncClient) -> None:
        for method, path, body in pending:
            started = time.perf_counter()
            try:
                response = await client.request(method, path, json=body)
                if response.status_code != 200:
                    errors[str(response.status_code)] += 1
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=20)
    figures = {"requests": len(calls), "per_s": len(calls) / wall, "p50_ms": cuts[9] * 1000, "p95_ms": cuts[18] * 1000}
    return figures | {"errors": sum(errors.values()), "why": dict(errors)}


def _load_line(row: dict) -> str:
    return (
        f"{row['backend']:<10} {row['workers']:>7} {row['kind']:<10} {row['clients']:>8} {row['requests']:>9}"
        f" {row['per_s']:>7.0f} {row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} {row['errors']:>7}"
    )


def _setup(row: dict) -> str:
    return f"{row['backend']} ({row['workers']} worker{'s' if row['workers'] > 1 else ''}) {row['kind']}"


def check_load(rows: list[dict]) -> list[str]:
    """Errors anywhere, and throughput that collapses as clients are added (against the lowest level)."""
    failures = [f"{_setup(r)} at {r['clients']} clients: errors {r['why']}" for r in rows if r["errors"]]
    for r in rows:
        same = [b for b in rows if (b["backend"], b["workers"], b["kind"]) == (r["backend"], r["workers"], r["kind"])]
        baseline = min(same, key=lambda b: b["clients"])
        if r["per_s"] < 0.8 * baseline["per_s"]:
            failures.append(
                f"{_setup(r)}: {r['per_s']:.0f}/s at {r['clients']} clients,"
                f" below 80% of {baseline['per_s']:.0f}/s at {baseline['clients']}"
            )
    return failures


def worker_scaling(rows: list[dict]) -> list[str]:
    """Each worker count's requests/s against one worker's, per backend, kind and client level."""
    one = {(r["backend"], r["kind"], r["clients"]): r["per_s"] for r in rows if r["workers"] == 1}
    return [
        f"{r['backend']} {r['kind']} at {r['clients']} clients: {r['workers']} workers {r['per_s']:.0f}/s,"
        f" 1 worker {one[key]:.0f}/s (x{r['per_s'] / one[key]:.2f})"
        for r in rows
        if r["workers"] > 1 and (key := (r["backend"], r["kind"], r["clients"])) in one
    ]


def _project(client: httpx.Client, items: int, terminology: str) -> int:
    body = {"name": "bench", "source_system": "bench LIS", "target_terminology": terminology}
    project = _ok(client.post("/projects", json=body)).json()["id"]
    rows = "".join(
        f"L{i:05d},{WORDS[i % len(WORDS)]} {SPECIMENS[i % len(SPECIMENS)]} test {i},{i}\n" for i in range(items)
    )
    files = {"file": ("codes.csv", ("source_code,source_text,frequency\n" + rows).encode(), "text/csv")}
    _ok(client.post(f"/projects/{project}/imports", files=files))
    return project


def _decide(client: httpx.Client, project: int, code: str, version: int) -> httpx.Response:
    headers = {"If-Match": f'"{version}"'}
    return client.post(f"/projects/{project}/items/{code}/decisions", json={"action": "approve"}, headers=headers)


def _timed(call, arguments) -> list[float]:
    durations = []
    for argument in arguments:
        started = time.perf_counter()
        _ok(call(argument))
        durations.append(time.perf_counter() - started)
    return durations


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
        )
    return response


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _p95(durations: list[float]) -> float:
    return statistics.quantiles(durations, n=20)[-1] if len(durations) > 1 else durations[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300, help="Source codes imported, suggested and approved.")
    parser.add_argument("--batch", type=int, default=10, help="Codes per suggestion request.")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("CROSSWALK_TEST_POSTGRES_URL", PG_DEFAULT))
    parser.add_argument(
        "--real", action="store_true", help="Rank with the bundled engine (needs --terminology loaded)."
    )
    parser.add_argument("--terminology", default="bench")
    parser.add_argument("--concurrency", help="Comma-separated client counts, e.g. 16,64,256: the load run instead.")
    parser.add_argument("--timeout", type=float, default=120, help="Seconds a load request may take before it errs.")
    parser.add_argument(
        "--workers", default="1", help="Comma-separated worker counts for the load run, e.g. 1,2 (PostgreSQL only)."
    )
    args = parser.parse_args()
    if args.concurrency:
        load(args)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            results.append(
                run_backend(
                    "sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.items, args.batch, args.real, args.terminology
                )
            )
        if args.backend in ("postgres", "both"):
            with pg_schema(args.pg_url) as url:
                results.append(run_backend("postgres", url, args.items, args.batch, args.real, args.terminology))
    print(f"\n{args.items} codes, suggestions in requests of {args.batch}, one decision per request, one client")
    print(f"{'backend':<10} {'suggest items/s':>16} {'suggest p95 ms':>15} {'decisions/s':>12} {'decide p95 ms':>14}")
    for r in results:
        print(
            f"{r['backend']:<10} {r['suggest_items_per_s']:>16.0f} {r['suggest_p95_ms']:>15.1f} {r['decisions_per_s']:>12.0f} {r['decide_p95_ms']:>14.1f}"
        )


def load(args: argparse.Namespace) -> None:
    levels = sorted({int(n) for n in args.concurrency.split(",")})
    worker_counts = sorted({int(n) for n in args.workers.split(",")})
    columns = ("clients", "requests", "req/s", "p50 ms", "p95 ms", "errors")
    print(
        f"{'backend':<10} {'workers':>7} {'kind':<10} "
        + " ".join(f"{c:>{w}}" for c, w in zip(columns, (8, 9, 7, 8, 8, 7), strict=True))
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):  # one process: `serve` refuses more on SQLite
            rows += run_load("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", levels, args.timeout)
        if args.backend in ("postgres", "both"):
            for workers in worker_counts:
                with pg_schema(args.pg_url) as url:
                    rows += run_load("postgres", url, levels, args.timeout, workers)
    for line in worker_scaling(rows):
        print(line)
    failures = check_load(rows)
    if failures:
        raise SystemExit("FAILED: " + "; ".join(failures))
    print("ok: no errors, and no level below 80% of the lowest level's throughput")


if __name__ == "__main__":
    main()
