"""Fit the fusion (lexical + semantic -> P(correct)) on labelled mappings.

`python -m training.fusion` refits the shipped default (`models/fusion_default.json`) on the
GEM *train* split only; the test split stays unseen for benchmarks/mapping.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.catalog import Catalog
from models.dense import OnnxEncoder
from models.fusion import DEFAULT_FUSION_PATH, LogisticFusion
from models.suggest import Suggester
from training.datasets import gem_icd9_to_icd10, undotted


def fusion_training_set(
    suggester: Suggester, texts: Sequence[str], gold: Sequence[set[str]], where=None
) -> tuple[np.ndarray, np.ndarray]:
    """Every pooled candidate's features, labelled 1 when it is one of the query's gold codes."""
    features, labels = [], []
    codes = [c.code for c in suggester.terminology]
    for candidates, targets in zip(suggester.candidates(texts, where), gold):
        features.append(candidates.features)
        labels.append(np.array([codes[i] in targets for i in candidates.pool]))
    return np.vstack(features), np.concatenate(labels)


def fit_default_fusion(suggester: Suggester, version: str) -> LogisticFusion:
    train = gem_icd9_to_icd10("train")
    dotted = {undotted(c.code): c.code for c in suggester.terminology}
    gold = [{dotted[t] for t in q.targets if t in dotted} for q in train]
    features, labels = fusion_training_set(suggester, [q.long_text for q in train], gold, {"billable": True})
    return LogisticFusion.fit(features, labels, version=version)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, help="name of the new fusion, e.g. fusion-gem9-v2")
    parser.add_argument("--output", type=Path, default=DEFAULT_FUSION_PATH)
    parser.add_argument("--home", type=Path, required=True, help="crosswalk data directory (caches)")
    args = parser.parse_args(argv)
    terminology = Catalog(args.home / "terminologies").get("icd10cm")
    cache = args.home / "cache"
    suggester = Suggester(terminology, OnnxEncoder(export_dir=cache), cache_dir=cache, progress=True)
    fusion = fit_default_fusion(suggester, args.version)
    args.output.write_text(fusion.to_json() + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
