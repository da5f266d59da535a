"""Which vector search for concept embeddings: exact numpy vs faiss / hnswlib / usearch.

Measures, on the cached ICD-10-CM embeddings (111,601 x 384 float32), single-query latency,
batch throughput and recall@100 against exact search. Libraries that are not installed are
skipped (`pip install faiss-cpu hnswlib usearch` to compare them all).

    python benchmarks/vector_search.py [--home ~/.crosswalk]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

K = 100  # the candidate pool depth the suggester asks of the dense matcher


def exact(vectors: np.ndarray):
    def search(queries: np.ndarray) -> np.ndarray:
        scores = queries @ vectors.T
        return np.argpartition(-scores, K, axis=1)[:, :K]

    return search, 0.0


def faiss_flat(vectors: np.ndarray):
    import faiss

    started = time.perf_counter()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return (lambda q: index.search(q, K)[1]), time.perf_counter() - started


def hnsw(vectors: np.ndarray):
    import hnswlib

    started = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=200, M=32)
    index.add_items(vectors)
    index.set_ef(200)
    return (lambda q: index.knn_query(q, k=K)[0]), time.perf_counter() - started


def usearch_hnsw(vectors: np.ndarray):
    from usearch.index import Index

    started = time.perf_counter()
    index = Index(ndim=vectors.shape[1], metric="ip", connectivity=32, expansion_add=200, expansion_search=200)
    index.add(np.arange(len(vectors)), vectors)
    return (lambda q: index.search(q, K).keys), time.perf_counter() - started


def measure(name, build, vectors, queries, truth):
    try:
        search, build_s = build(vectors)
    except ImportError:
        print(f"{name:14} not installed")
        return
    single = []
    for query in queries[:200]:
        started = time.perf_counter()
        search(query[None, :])
        single.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    found = np.asarray(search(queries))
    batch_s = time.perf_counter() - started
    recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
    print(
        f"{name:14} build {build_s:6.1f} s  single p50 {np.percentile(single, 50):5.2f} ms "
        f"p95 {np.percentile(single, 95):5.2f} ms  batch {len(queries) / batch_s:7.0f} q/s  recall@{K} {recall:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("CROSSWALK_HOME", Path.home() / ".crosswalk")))
    args = parser.parse_args()
    arrays = sorted((args.home / "cache" / "embeddings").glob("*/*.npy"), key=lambda p: p.stat().st_size)
    if not arrays:
        raise SystemExit("no cached embeddings: run `crosswalk demo` first")
    vectors = np.ascontiguousarray(np.load(arrays[-1]), dtype=np.float32)
    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(len(vectors), 1000, replace=False)] + rng.normal(0, 0.02, (1000, vectors.shape[1]))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = exact(vectors)[0](queries)
    print(f"{len(vectors):,} vectors x {vectors.shape[1]}, 1,000 queries, top {K}")
    for name, build in [
        ("numpy exact", exact),
        ("faiss flat", faiss_flat),
        ("hnswlib", hnsw),
        ("usearch", usearch_hnsw),
    ]:
        measure(name, build, vectors, queries, truth)


if __name__ == "__main__":
    main()
