"""Mapping benchmark: CMS GEM ICD-9-CM -> ICD-10-CM, held-out split, baseline vs crosswalk.

Queries are ICD-9-CM long descriptions; a hit is any GEM target of the code (no-map and
combination rows skipped); targets are billable ICD-10-CM 2026 codes. The test split is
`int(sha1(code), 16) % 5 == 0`; nothing here is fitted or tuned on it (the shipped fusion was
fitted on the train split by `python -m training.fusion`).

    python benchmarks/mapping.py            # accuracy, warm start, throughput, latency
    python benchmarks/mapping.py --cold     # also the cold index build in an empty cache (~10 min)

Figures go to stdout as a table; --json writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.catalog import Catalog  # noqa: E402
from models.dense import OnnxEncoder  # noqa: E402
from models.items import SourceItem  # noqa: E402
from models.suggest import Suggester  # noqa: E402
from training.datasets import LabelledQuery, gem_icd9_to_icd10, undotted  # noqa: E402

BILLABLE = {"billable": True}


def ranking_metrics(ranked: list[list[str]], queries: list[LabelledQuery]) -> dict[str, float]:
    """acc@k: a GEM target within the top k; MRR@10: mean of 1/rank of the first hit."""
    first_hit = []
    for codes, query in zip(ranked, queries):
        ranks = [i for i, code in enumerate(codes[:10], 1) if undotted(code) in query.targets]
        first_hit.append(ranks[0] if ranks else None)
    n = len(queries)
    return {
        "acc@1": sum(r == 1 for r in first_hit if r) / n,
        "acc@5": sum(r <= 5 for r in first_hit if r) / n,
        "acc@10": sum(r <= 10 for r in first_hit if r) / n,
        "mrr@10": sum(1 / r for r in first_hit if r) / n,
    }


class UsagiBaseline:
    """Character 3-4-gram TF-IDF cosine over concept names and synonyms, as OHDSI Usagi ranks."""

    def __init__(self, suggester: Suggester):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = suggester.rows
        self.codes = [c.code for c in suggester.terminology]
        self.mask = suggester.allowed(BILLABLE)
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(3, 4), lowercase=True)
        self.matrix = self.vectorizer.fit_transform(self.rows.texts).T.tocsr()

    def rank(self, texts: list[str], k: int = 10) -> list[list[str]]:
        out = []
        for start in range(0, len(texts), 256):
            scores = self.rows.concept_max(
                (self.vectorizer.transform(texts[start : start + 256]) @ self.matrix).toarray()
            )
            scores[:, ~self.mask] = -1
            for row in scores:
                top = np.argpartition(-row, k)[:k]
                out.append([self.codes[i] for i in top[np.argsort(-row[top])]])
        return out


def naive_hybrid(suggester: Suggester, texts: list[str], k: int = 10) -> list[list[str]]:
    """The same candidate pools ranked by a fixed 50/50 sum of the two cosines."""
    from models.fusion import FEATURES

    lexical, semantic = FEATURES.index("lexical"), FEATURES.index("semantic")
    codes = [c.code for c in suggester.terminology]
    ranked = []
    for candidates in suggester.candidates(texts, BILLABLE):
        total = candidates.features[:, lexical] + candidates.features[:, semantic]
        ranked.append([codes[candidates.pool[j]] for j in np.argsort(-total, kind="stable")[:k]])
    return ranked


def build_suggester(home: Path) -> tuple[Suggester, float]:
    started = time.perf_counter()
    terminology = Catalog(home / "terminologies").get("icd10cm")
    cache = home / "cache"
    suggester = Suggester(terminology, OnnxEncoder(export_dir=cache), cache_dir=cache, progress=True)
    return suggester, time.perf_counter() - started


WARM_START = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {repo!r})
from pathlib import Path
from models.catalog import Catalog
from models.dense import OnnxEncoder
from models.suggest import Suggester
home = Path({home!r})
cache = home / "cache"
s = Suggester(Catalog(home / "terminologies").get("icd10cm"), OnnxEncoder(export_dir=cache), cache_dir=cache)
s.search("Paratyphoid fever, unspecified", where={{"billable": True}})
print(time.perf_counter() - started)
"""


def warm_start_seconds(home: Path, runs: int = 3) -> float:
    """A new Python process: imports, catalog, cached embeddings and index, first answer."""
    script = WARM_START.format(repo=str(Path(__file__).resolve().parents[1]), home=str(home))
    times = [
        float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return float(np.median(times))


def latencies_ms(suggester: Suggester, texts: list[str]) -> tuple[float, float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        suggester.suggest([SourceItem("q", text)], top_k=10, where=BILLABLE)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("CROSSWALK_HOME", Path.home() / ".crosswalk")))
    parser.add_argument("--cold", action="store_true", help="also time an index build in an empty cache")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    test = gem_icd9_to_icd10("test")
    figures: dict[str, object] = {"queries": len(test)}
    if args.cold:
        with tempfile.TemporaryDirectory() as empty:
            Catalog(args.home / "terminologies").get("icd10cm")  # parse once: cold = encode + index
            (Path(empty) / "terminologies").mkdir()
            os.link(
                args.home / "terminologies" / "icd10cm.jsonl.gz", Path(empty) / "terminologies" / "icd10cm.jsonl.gz"
            )
            _, figures["cold_index_s"] = build_suggester(Path(empty))
    suggester, figures["load_s"] = build_suggester(args.home)
    figures["rows_indexed"] = len(suggester.rows.texts)
    figures["concepts_billable"] = int(suggester.allowed(BILLABLE).sum())
    reachable = {undotted(c.code) for c in suggester.terminology if c.attributes.get("billable")}
    figures["ceiling"] = sum(bool(q.targets & reachable) for q in test) / len(test)

    texts = [q.long_text for q in test]
    baseline = UsagiBaseline(suggester)
    figures["baseline"] = ranking_metrics(baseline.rank(texts), test)

    figures["naive_hybrid"] = ranking_metrics(naive_hybrid(suggester, texts), test)

    started = time.perf_counter()
    results = suggester.suggest([SourceItem(q.source_code, t) for q, t in zip(test, texts)], top_k=10, where=BILLABLE)
    figures["batch_terms_per_s"] = len(test) / (time.perf_counter() - started)
    figures["crosswalk"] = ranking_metrics([[s.code for s in r] for r in results], test)
    short = suggester.suggest([SourceItem(q.source_code, q.short_text) for q in test], top_k=10, where=BILLABLE)
    figures["crosswalk_short_titles"] = ranking_metrics([[s.code for s in r] for r in short], test)
    figures["baseline_short_titles"] = ranking_metrics(baseline.rank([q.short_text for q in test]), test)

    figures["latency_p50_ms"], figures["latency_p95_ms"] = latencies_ms(suggester, texts[:300])
    figures["warm_start_s"] = warm_start_seconds(args.home)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def report(f: dict) -> None:
    print(
        f"\nGEM ICD-9-CM -> ICD-10-CM, test split: {f['queries']} codes, long descriptions; "
        f"{f['concepts_billable']:,} billable targets ({f['rows_indexed']:,} strings indexed); "
        f"reachable ceiling {f['ceiling']:.3f}"
    )
    print(f"{'':34} {'acc@1':>6} {'acc@5':>6} {'acc@10':>6} {'MRR@10':>7}")
    for name, key in [
        ("baseline (char 3-4-gram TF-IDF)", "baseline"),
        ("naive 50/50 hybrid, same pools", "naive_hybrid"),
        ("crosswalk", "crosswalk"),
        ("baseline, ICD-9 short titles", "baseline_short_titles"),
        ("crosswalk, ICD-9 short titles", "crosswalk_short_titles"),
    ]:
        m = f[key]
        print(f"{name:34} {m['acc@1']:6.3f} {m['acc@5']:6.3f} {m['acc@10']:6.3f} {m['mrr@10']:7.3f}")
    cold = f"{f['cold_index_s']:.0f} s" if "cold_index_s" in f else "not measured (--cold)"
    print(f"\ncold index build: {cold}; warm start (new process to first answer): {f['warm_start_s']:.2f} s")
    print(
        f"batch throughput: {f['batch_terms_per_s']:.0f} terms/s; "
        f"single query p50 {f['latency_p50_ms']:.1f} ms, p95 {f['latency_p95_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
