"""Mapping benchmark: every domain against its baselines in one run, held-out splits only.

Domains:
- CMS GEM ICD-9-CM -> ICD-10-CM: ICD-9-CM long descriptions against billable codes, and the
  ICD-9-CM short titles with no filter (the terminology's default targets, as `crosswalk suggest`
  without `--where`). A hit is any GEM target (no-map and combination rows skipped); the test split
  is `int(sha1(code), 16) % 5 == 0`.
- Local lab names -> LOINC (../shared/data/labs-loinc: a hospital flowsheet and CDC's LIVD table),
  with the context columns fluid, category and unit, against the LOINC names both sources carry;
  held out by local code (or name, where there is none) the same way, each source reported apart;
  and the flowsheet's held-out names again with their specimen moved into a fluid column, the shape
  of many hospital dictionaries (name, fluid, category, unit). All three again against the same
  table written as a LOINC release writes it, with parts and related names (loinc_release.py).

Each domain is ranked by character TF-IDF (as OHDSI Usagi), MiniLM alone, a naive 50/50 sum of both
cosines over crosswalk's own candidate pools, and crosswalk. Nothing is fitted or tuned on a test
split (`python -m training.fusion` fits the shipped fusion on the train splits). The run exits
non-zero when crosswalk ranks below the naive sum at acc@1 on any domain.

    python benchmarks/mapping.py            # accuracy, warm start, throughput, latency
    python benchmarks/mapping.py --cold     # also the cold index build in an empty cache (~10 min)

Figures go to stdout as tables; --json writes them too. Each ECE is printed beside the ECE a perfectly
calibrated score would still show on the same queries (a few hundred queries make noisy bins).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loinc_release import write_release_shaped  # noqa: E402
from models.catalog import Catalog  # noqa: E402
from models.dense import OnnxEncoder  # noqa: E402
from models.items import SourceItem  # noqa: E402
from models.suggest import Suggester  # noqa: E402
from training import evaluate  # noqa: E402
from training.datasets import (  # noqa: E402
    LAB_SOURCES,
    gem_icd9_to_icd10,
    labs_loinc_terminology,
    labs_to_loinc,
    specimen_in_column,
    undotted,
)

BILLABLE = {"billable": True}


@dataclass
class Domain:
    """One benchmark domain: a suggester over its targets, held-out source items, their gold codes."""

    name: str
    suggester: Suggester
    items: list[SourceItem]
    gold: list[set[str]]
    where: dict | None  # None: the terminology's default mapping targets


def ranking_metrics(ranked: list[list[str]], gold: list[set[str]]) -> dict[str, float]:
    """acc@k: a gold target within the top k; MRR@10: mean of 1/rank of the first hit."""
    return evaluate.ranking_metrics(ranked, gold)


class UsagiBaseline:
    """Character 3-4-gram TF-IDF cosine over concept names and synonyms, as OHDSI Usagi ranks."""

    def __init__(self, suggester: Suggester, where: dict | None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = suggester.rows
        self.codes = [c.code for c in suggester.terminology]
        self.mask = suggester.allowed(where)
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(3, 4), lowercase=True)
        self.matrix = self.vectorizer.fit_transform(self.rows.texts).T.tocsr()

    def rank(self, texts: list[str], k: int = 10) -> list[list[str]]:
        out = []
        k = min(k, int(self.mask.sum()))
        for start in range(0, len(texts), 256):
            scores = self.rows.concept_max(
                (self.vectorizer.transform(texts[start : start + 256]) @ self.matrix).toarray()
            )
            scores[:, ~self.mask] = -1
            for row in scores:
                top = np.argpartition(-row, k - 1)[:k]
                out.append([self.codes[i] for i in top[np.argsort(-row[top])]])
        return out


def pool_baselines(domain: Domain, k: int = 10) -> dict[str, list[list[str]]]:
    """crosswalk's own candidate pools ranked by MiniLM alone and by a fixed 50/50 sum of both cosines.

    The pool is the union of each matcher's top 100, so MiniLM's top 10 here is its top 10 overall.
    """
    from models.fusion import FEATURES

    lexical, semantic = FEATURES.index("lexical"), FEATURES.index("semantic")
    codes = [c.code for c in domain.suggester.terminology]
    texts = [item.query_text() for item in domain.items]
    ranked: dict[str, list[list[str]]] = {"minilm": [], "naive": []}
    for candidates in domain.suggester.candidates(texts, domain.where):
        f = candidates.features
        for name, score in (("minilm", f[:, semantic]), ("naive", f[:, lexical] + f[:, semantic])):
            ranked[name].append([codes[candidates.pool[j]] for j in np.argsort(-score, kind="stable")[:k]])
    return ranked


def measure(domain: Domain) -> dict[str, object]:
    """Every ranker on one domain, and the crosswalk top score's calibration."""
    texts = [item.query_text() for item in domain.items]
    targets = int(domain.suggester.allowed(domain.where).sum())
    figures: dict[str, object] = {"queries": len(domain.items), "targets": targets}
    figures["tfidf"] = ranking_metrics(UsagiBaseline(domain.suggester, domain.where).rank(texts), domain.gold)
    for name, ranked in pool_baselines(domain).items():
        figures[name] = ranking_metrics(ranked, domain.gold)
    started = time.perf_counter()
    results = domain.suggester.suggest(domain.items, top_k=10, where=domain.where)
    figures["terms_per_s"] = len(texts) / (time.perf_counter() - started)
    figures["crosswalk"] = ranking_metrics([[s.code for s in r] for r in results], domain.gold)
    confidences = [r[0].score if r else 0.0 for r in results]
    hits = [bool(r) and r[0].code in g for r, g in zip(results, domain.gold)]
    figures["crosswalk"]["ece"] = evaluate.expected_calibration_error(confidences, hits)
    figures["crosswalk"]["ece_floor"] = evaluate.calibrated_ece_floor(confidences)
    return figures


def gem_domains(suggester: Suggester) -> list[Domain]:
    test = gem_icd9_to_icd10("test")
    dotted = {undotted(c.code): c.code for c in suggester.terminology}
    gold = [{dotted[t] for t in q.targets if t in dotted} for q in test]
    return [
        Domain(
            "GEM ICD-9-CM long titles -> billable ICD-10-CM",
            suggester,
            [SourceItem(q.source_code, q.long_text) for q in test],
            gold,
            BILLABLE,
        ),
        Domain(
            "ICD-9-CM short titles -> ICD-10-CM, no filter",
            suggester,
            [SourceItem(q.source_code, q.short_text) for q in test],
            gold,
            None,
        ),
    ]


def lab_domains(home: Path, labs: Path | None, table: str = "") -> list[Domain]:
    """Held-out local lab names -> LOINC, each public source apart (their difficulty differs).
    `table` names the LOINC table when it is not the sources' own (see loinc_release)."""
    cache = home / "cache"
    suggester = Suggester(labs_loinc_terminology(labs), OnnxEncoder(export_dir=cache), cache_dir=cache)
    test = labs_to_loinc("test", labs)
    domains = []
    for source in LAB_SOURCES:
        queries = [q for q in test if q.source == source]
        items = [SourceItem(q.source_code, q.text, q.context) for q in queries]
        name = f"labs -> LOINC ({source}{table})"
        domains.append(Domain(name, suggester, items, [set(q.targets) for q in queries], None))
    # Many hospital dictionaries keep the specimen in a fluid column, not in the name: the same
    # held-out flowsheet names in that shape (chemistry's serum tests say "Blood" there).
    moved = [m for m in (specimen_in_column(q) for q in test if q.source == LAB_SOURCES[0]) if m is not None]
    items = [SourceItem(q.source_code, q.text, q.context) for q in moved]
    name = f"labs -> LOINC ({LAB_SOURCES[0]}, specimen in a fluid column{table})"
    domains.append(Domain(name, suggester, items, [set(q.targets) for q in moved], None))
    return domains


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
    parser.add_argument("--labs", type=Path, help="the labs-loinc folder (default: ../shared/data/labs-loinc)")
    parser.add_argument("--cold", action="store_true", help="also time an index build in an empty cache")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    figures: dict[str, object] = {}
    if args.cold:
        with tempfile.TemporaryDirectory() as empty:
            Catalog(args.home / "terminologies").get("icd10cm")  # parse once: cold = encode + index
            (Path(empty) / "terminologies").mkdir()
            os.link(
                args.home / "terminologies" / "icd10cm.jsonl.gz", Path(empty) / "terminologies" / "icd10cm.jsonl.gz"
            )
            _, figures["cold_index_s"] = build_suggester(Path(empty))
    suggester, figures["load_s"] = build_suggester(args.home)
    reachable = {undotted(c.code) for c in suggester.terminology if c.attributes.get("billable")}
    test = gem_icd9_to_icd10("test")
    figures["gem_ceiling"] = sum(bool(q.targets & reachable) for q in test) / len(test)
    domains = gem_domains(suggester) + lab_domains(args.home, args.labs)
    figures["domains"] = {domain.name: measure(domain) for domain in domains}
    with tempfile.TemporaryDirectory() as release:  # the same, against a table shaped like a LOINC release
        shaped = lab_domains(args.home, write_release_shaped(Path(release), args.labs), ", release-shaped table")
        figures["domains"].update({domain.name: measure(domain) for domain in shaped})

    texts = [item.text for item in domains[0].items]
    started = time.perf_counter()
    suggester.suggest([SourceItem("q", t) for t in texts], top_k=10, where=BILLABLE)
    figures["batch_terms_per_s"] = len(texts) / (time.perf_counter() - started)
    figures["latency_p50_ms"], figures["latency_p95_ms"] = latencies_ms(suggester, texts[:300])
    figures["warm_start_s"] = warm_start_seconds(args.home)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    losses = [
        f"{name}: crosswalk acc@1 {f['crosswalk']['acc@1']:.3f} < naive 50/50 sum {f['naive']['acc@1']:.3f}"
        for name, f in figures["domains"].items()
        if f["crosswalk"]["acc@1"] < f["naive"]["acc@1"]
    ]
    if losses:
        print("\nFAIL: the learned ranking loses to its own inputs on\n  " + "\n  ".join(losses), file=sys.stderr)
        sys.exit(1)


RANKERS = [
    ("char 3-4-gram TF-IDF (as OHDSI Usagi)", "tfidf"),
    ("MiniLM cosine alone", "minilm"),
    ("naive 50/50 sum, same pools", "naive"),
    ("crosswalk", "crosswalk"),
]


def report(f: dict) -> None:
    for name, d in f["domains"].items():
        print(f"\n{name}: {d['queries']:,} held-out queries, {d['targets']:,} target concepts")
        print(f"{'':38} {'acc@1':>6} {'acc@5':>6} {'acc@10':>6} {'MRR@10':>7} {'ECE':>6}")
        for label, key in RANKERS:
            m = d[key]
            ece = f"{m['ece']:6.3f}" if "ece" in m else ""
            print(f"{label:38} {m['acc@1']:6.3f} {m['acc@5']:6.3f} {m['acc@10']:6.3f} {m['mrr@10']:7.3f} {ece}")
        floor = d["crosswalk"].get("ece_floor")
        if floor is not None:
            print(f"{'':38} ECE a perfectly calibrated score would show on these queries: {floor:.3f}")
    print(f"\nGEM reachable ceiling (a target left in ICD-10-CM 2026): {f['gem_ceiling']:.3f}")
    cold = f"{f['cold_index_s']:.0f} s" if "cold_index_s" in f else "not measured (--cold)"
    print(f"cold index build: {cold}; warm start (new process to first answer): {f['warm_start_s']:.2f} s")
    print(
        f"batch throughput (GEM long titles): {f['batch_terms_per_s']:.0f} terms/s; "
        f"single query p50 {f['latency_p50_ms']:.1f} ms, p95 {f['latency_p95_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
