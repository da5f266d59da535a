"""Concept text search (the review page's and GET /projects/{id}/search's): index build, then p50/p95 per
query against the naive baseline in the same run, a scan of every concept's texts with the same rule.

Queries are made from the terminology itself (seeded): a word of a display, two words, a two- and a
four-letter prefix, plus nonsense. Both must find the same concepts (exit 1 otherwise), and the index
must be faster than the scan (exit 1 otherwise).

    python benchmarks/search.py [--terminology icd10cm] [--queries 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.catalog import Catalog  # noqa: E402
from service.concept_search import MIN_PREFIX, TextIndex, needs_second_look, words_of  # noqa: E402
from service.settings import get_settings  # noqa: E402


def queries_from(terminology, count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    concepts = terminology.concepts
    out: list[str] = []
    while len(out) < count:
        words = [w for w in words_of(rng.choice(concepts).display) if len(w) >= 4]
        if len(words) < 2:
            continue
        first, second = rng.sample(words, 2)
        out += [first, f"{first} {second}", first[:2], f"{first[:4]} {second[:4]}"]
    return out[: count - count // 10] + ["xqzv", "qqqq zzzz"] * (count // 20)


def scan(terminology, text: str) -> set[int]:
    """The baseline: every concept's words, every query word a word or (from MIN_PREFIX letters) a prefix."""
    query = words_of(text)
    found = set()
    for position, concept in enumerate(terminology.concepts):
        if needs_second_look(concept):
            continue
        words = {w for t in concept.texts() for w in words_of(t)}
        if all(q in words or (len(q) >= MIN_PREFIX and any(w.startswith(q) for w in words)) for q in query):
            found.add(position)
    return found


def timed(run, queries: list[str]) -> tuple[list[float], list]:
    times, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(run(query))
        times.append((time.perf_counter() - start) * 1000)
    return times, results


def p(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q * 100) - 1] if len(times) > 1 else times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminology", default="icd10cm", help="A terminology in the catalog ($CROSSWALK_HOME).")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=20, help="The scan is slow: time it on fewer.")
    args = parser.parse_args()
    terminology = Catalog(get_settings().terminologies_dir).get(args.terminology)
    start = time.perf_counter()
    index = TextIndex(terminology)
    built = time.perf_counter() - start
    queries = queries_from(terminology, args.queries)
    # every hit, not the top 10, so the sets compare
    index_times, index_hits = timed(lambda q: index.find(q, limit=len(terminology)), queries)
    served_times, _ = timed(lambda q: index.find(q, limit=10), queries)
    sample = queries[:: max(1, len(queries) // args.baseline_queries)]
    scan_times, scan_hits = timed(lambda q: scan(terminology, q), sample)
    print(f"{args.terminology}: {len(terminology):,} concepts; index built in {built:.1f} s")
    print(f"index, top 10 as served: p50 {p(served_times, 0.5):.1f} ms, p95 {p(served_times, 0.95):.1f} ms")
    print(f"index, all hits ({len(queries)} queries): p50 {p(index_times, 0.5):.1f}, p95 {p(index_times, 0.95):.1f} ms")
    print(f"scan (baseline): {len(sample)} queries, p50 {p(scan_times, 0.5):.1f} ms, p95 {p(scan_times, 0.95):.1f} ms")
    by_query = dict(zip(queries, index_hits))
    wrong = [q for q, hits in zip(sample, scan_hits) if {h.position for h in by_query[q].hits} != hits]
    if wrong:
        sys.exit(f"FAIL: the index and the scan disagree on {len(wrong)} queries, e.g. {wrong[0]!r}")
    if p(index_times, 0.5) >= p(scan_times, 0.5):
        sys.exit("FAIL: the index is no faster than scanning every concept")
    print("ok: the same concepts as the scan, faster")


if __name__ == "__main__":
    main()
