"""Scale-out benchmark: monitors and batch mapping on 1, 2 and 4 local Dask workers, against the naive
baseline in the same run (one process, no Dask).

Monitors: a lab feed of ROWS rows x 20 columns (ids, a site segment, a LOINC code with its value and unit,
eight numeric results, categorical and date columns) generated on the fly in PART_ROWS-row chunks, written
as Parquet parts (not timed), then scored as `crosswalk monitor --current 'parts/*.parquet' --dask local:N`
scores them: each part read and profiled on a worker, profiles merged in a tree, scored against the
reference profile. The baseline reads and profiles the same parts one after another in this process and
merges the profiles. Timings exclude cluster start-up (printed apart). Every run must give the baseline's
alerts (exit 1 otherwise), and the best Dask run must beat the baseline where the machine has a core per
worker (exit 1 otherwise).

Also printed, for the projection beyond this machine: the cost of one part on one worker and of one merge,
and T(N) ~ ceil(parts / N) x part + ceil(log2 parts) x merge (a lower bound: it ignores the scheduler).

Batch mapping: local lab names (../shared/data/labs-loinc flowsheet and LIVD) ranked against the LOINC
names those sources carry, with the bundled MiniLM + TF-IDF model: `crosswalk suggest --dask local:N`'s
path against a plain `Suggester.suggest` in this process. Outputs must be identical (exit 1 otherwise).
Per-worker model loading is timed apart (once per worker process, from the shared cache).

    python benchmarks/scale.py [--rows 10000000] [--workers 1,2,4] [--suggest-items 2048] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitors.contract import Contract, infer_contract  # noqa: E402
from monitors.profile import Profile, merge_profiles, profile_frame  # noqa: E402
from monitors.report import score_profiles  # noqa: E402
from monitors.rules import PlausibilityRules  # noqa: E402
from monitors.scale import score_batch_dask  # noqa: E402

PART_ROWS = 500_000
SITES = np.array(["north", "south", "east", "west", "central"], dtype=object)
CODES = np.array([f"{1000 + 37 * i}-{i % 10}" for i in range(40)], dtype=object)
UNITS = np.array(["mg/dL", "mmol/L", "g/dL", "%", "U/L", "10*3/uL", "mEq/L", "fL"], dtype=object)
CODE_UNIT = np.arange(len(CODES)) % len(UNITS)  # each code reported in one unit
CODE_MEAN = np.linspace(1.0, 300.0, len(CODES))
GENDERS = np.array(["F", "M", "U"], dtype=object)
STATUSES = np.array(["final", "preliminary", "corrected", "amended"], dtype=object)
DEPARTMENTS = np.array([f"dept-{i:02d}" for i in range(25)], dtype=object)


def lab_part(index: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """One chunk of the synthetic lab feed: 20 columns, the same distribution for every chunk."""
    rng = np.random.default_rng([seed, index])
    code = rng.integers(0, len(CODES), rows)
    start = index * rows
    frame = {
        "measurement_id": np.arange(start, start + rows, dtype=np.int64),
        "person_id": rng.integers(1, 2_000_000, rows),
        "site": SITES[rng.integers(0, len(SITES), rows)],
        "measurement_source_value": CODES[code],
        "value_as_number": rng.normal(CODE_MEAN[code], CODE_MEAN[code] * 0.1),
        "unit_source_value": UNITS[CODE_UNIT[code]],
        "measurement_date": pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 31 * 24, rows), "h"),
        "gender_source_value": GENDERS[rng.choice(3, rows, p=[0.5, 0.48, 0.02])],
        "age": rng.uniform(0, 95, rows).round(1),
        "result_status": STATUSES[rng.choice(4, rows, p=[0.9, 0.06, 0.03, 0.01])],
        "department": DEPARTMENTS[rng.integers(0, len(DEPARTMENTS), rows)],
        "visit_occurrence_id": rng.integers(1, 5_000_000, rows),
    }
    for i in range(8):  # panel results of the same draw: heavy-tailed, some missing
        values = rng.lognormal(mean=1.0 + i / 4, sigma=0.4, size=rows)
        values[rng.random(rows) < 0.02 * (i + 1)] = np.nan
        frame[f"result_{i + 1}"] = values
    return pd.DataFrame(frame)


def write_parts(folder: Path, rows: int, part_rows: int) -> list[Path]:
    paths = []
    for index in range(math.ceil(rows / part_rows)):
        path = folder / f"part-{index:04d}.parquet"
        lab_part(index, min(part_rows, rows - index * part_rows)).to_parquet(path, index=False)
        paths.append(path)
    return paths


def baseline(paths: list[Path], contract: Contract, reference: Profile) -> tuple[float, list, list[float]]:
    """One process: read and profile each part in turn, merge; seconds, alerts, per-part and merge costs."""
    started, profile, part_seconds, merge_seconds = time.perf_counter(), None, [], []
    rules = PlausibilityRules()
    for path in paths:
        before = time.perf_counter()
        part = profile_frame(pd.read_parquet(path), contract, "site", rules)
        part_seconds.append(time.perf_counter() - before)
        if profile is not None:
            before = time.perf_counter()
            profile = merge_profiles(profile, part)
            merge_seconds.append(time.perf_counter() - before)
        else:
            profile = part
    report = score_profiles(reference, profile, contract, batch_id="bench")
    return (
        time.perf_counter() - started,
        report.alerts,
        [float(np.median(part_seconds)), float(np.median(merge_seconds or [0.0]))],
    )


def on_dask(workers: int, pattern: str, contract: Contract, reference: Profile) -> tuple[float, float, list]:
    from distributed import Client, LocalCluster

    before = time.perf_counter()
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.run(_import_monitors)  # once per worker process (seconds under load), not per batch: start-up
        start_up = time.perf_counter() - before
        started = time.perf_counter()
        report = score_batch_dask(pattern, reference, contract, batch_id="bench")
        return start_up, time.perf_counter() - started, report.alerts


def _import_monitors() -> None:
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import monitors.report  # noqa: F401


def same_alerts(a: list, b: list) -> bool:
    key = [(x.check, x.column, x.segment, x.severity) for x in a] == [
        (x.check, x.column, x.segment, x.severity) for x in b
    ]
    return key and np.allclose([x.statistic for x in a], [x.statistic for x in b], rtol=1e-6, atol=1e-9)


def bench_monitors(rows: int, part_rows: int, worker_counts: list[int]) -> bool:
    folder = Path(tempfile.mkdtemp(prefix="crosswalk-scale-"))
    try:
        print(
            f"monitors: writing {rows:,} rows x 20 columns in {part_rows:,}-row Parquet parts to {folder}", flush=True
        )
        began = time.perf_counter()
        paths = write_parts(folder, rows, part_rows)
        size = sum(p.stat().st_size for p in paths)
        print(
            f"  {len(paths)} parts, {size / 2**20:,.0f} MiB, written in {time.perf_counter() - began:.0f} s", flush=True
        )
        reference_frame = lab_part(10_000, 200_000, seed=1)
        contract = infer_contract(reference_frame, feed="bench-labs", segment_columns=["site"])
        reference = profile_frame(reference_frame, contract, "site", PlausibilityRules())
        seconds, expected, (part_cost, merge_cost) = baseline(paths, contract, reference)
        print(f"  {'run':<24} {'seconds':>8} {'rows/s':>11} {'vs baseline':>11}  start-up  alerts", flush=True)
        print(
            f"  {'baseline (1 process)':<24} {seconds:>8.1f} {rows / seconds:>11,.0f} {'1.00x':>11}  {'-':>8}  {len(expected)}",
            flush=True,
        )
        best, ok = math.inf, True
        for workers in worker_counts:
            start_up, took, alerts = on_dask(workers, str(folder / "part-*.parquet"), contract, reference)
            same = same_alerts(alerts, expected)
            ok &= same
            best = min(best, took) if workers <= (os.cpu_count() or 1) else best
            print(
                f"  {f'dask local:{workers}':<24} {took:>8.1f} {rows / took:>11,.0f} {seconds / took:>10.2f}x "
                f"{start_up:>7.1f}s  {len(alerts)}{'' if same else '  DIFFERENT ALERTS'}",
                flush=True,
            )
        print(
            f"  one part ({part_rows:,} rows) read + profiled on one worker: {part_cost:.2f} s; one merge: "
            f"{merge_cost * 1000:.0f} ms",
            flush=True,
        )
        depth = math.ceil(math.log2(len(paths))) if len(paths) > 1 else 0
        projected = ", ".join(
            f"{n} workers {math.ceil(len(paths) / n) * part_cost + depth * merge_cost:.1f} s" for n in (1, 2, 4, 8, 16)
        )
        print(f"  projected from those costs (a core per worker, {len(paths)} parts): {projected}", flush=True)
        if not ok:
            print("FAIL: a Dask run's alerts differ from the baseline's", flush=True)
        if best >= seconds:
            print("FAIL: no Dask run beat the single-process baseline on this machine", flush=True)
        return ok and best < seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_suggest(count: int, worker_counts: list[int]) -> bool:
    """labs-loinc names -> LOINC: single process against `suggest_on_cluster` on N local workers."""
    from distributed import Client, LocalCluster

    from models.items import SourceItem
    from service import cluster
    from service.engine import get_suggester
    from service.settings import Settings
    from training.datasets import labs_loinc_terminology, labs_to_loinc

    home = Path(tempfile.mkdtemp(prefix="crosswalk-scale-home-"))
    try:
        shared = Path(os.environ.get("CROSSWALK_HOME", Path.home() / ".crosswalk")) / "cache"
        shared.mkdir(parents=True, exist_ok=True)
        (home / "cache").symlink_to(shared)  # the shared model and index cache, as workers of one home share it
        labs_loinc_terminology().save(home / "terminologies" / "labs-loinc.jsonl.gz")
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'unused.db'}")
        queries = labs_to_loinc()
        items = [SourceItem(q.source_code, q.text, q.context) for q in (queries * (count // len(queries) + 1))[:count]]
        print(
            f"\nsuggest: {len(items):,} local lab names -> {len(labs_loinc_terminology()):,} LOINC names, top 10",
            flush=True,
        )
        before = time.perf_counter()
        engine = get_suggester(settings, "labs-loinc")
        load = time.perf_counter() - before
        started = time.perf_counter()
        expected = engine.suggest(items, top_k=10)
        seconds = time.perf_counter() - started
        print(f"  {'run':<24} {'seconds':>8} {'items/s':>9} {'vs baseline':>11}  model load per worker", flush=True)
        print(
            f"  {'baseline (1 process)':<24} {seconds:>8.1f} {len(items) / seconds:>9,.0f} {'1.00x':>11}  {load:.1f} s",
            flush=True,
        )
        ok = True
        for workers in worker_counts:
            with (
                LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as local,
                Client(local) as client,
            ):
                before = time.perf_counter()
                addresses = list(client.scheduler_info()["workers"])
                client.gather(
                    [
                        client.submit(cluster._suggester_size, settings, "labs-loinc", workers=[a], pure=False)
                        for a in addresses
                    ]
                )
                load = time.perf_counter() - before
                started = time.perf_counter()
                got = cluster.suggest_on_cluster(client, settings, "labs-loinc", items, 10)
                took = time.perf_counter() - started
            same = [[(s.code, s.score) for s in r] for r in got] == [[(s.code, s.score) for s in r] for r in expected]
            ok &= same
            print(
                f"  {f'dask local:{workers}':<24} {took:>8.1f} {len(items) / took:>9,.0f} {seconds / took:>10.2f}x  "
                f"{load:.1f} s{'' if same else '  DIFFERENT OUTPUT'}",
                flush=True,
            )
        if not ok:
            print("FAIL: a Dask run's suggestions differ from the single-process run's", flush=True)
        return ok
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--part-rows", type=int, default=PART_ROWS)
    parser.add_argument("--workers", default="1,2,4", help="local worker counts for the monitors, e.g. 1,2,4")
    parser.add_argument("--suggest-workers", default="1,2")
    parser.add_argument("--suggest-items", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="1M rows, 512 items: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.part_rows, args.suggest_items = 1_000_000, 250_000, 512
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at start", flush=True)
    monitors_ok = bench_monitors(args.rows, args.part_rows, [int(n) for n in args.workers.split(",")])
    suggest_ok = bench_suggest(args.suggest_items, [int(n) for n in args.suggest_workers.split(",")])
    print(f"\nload average {os.getloadavg()[0]:.1f} at end", flush=True)
    sys.exit(0 if monitors_ok and suggest_ok else 1)


if __name__ == "__main__":
    main()
