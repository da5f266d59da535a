"""Fit the shipped fusion (lexical + semantic -> P(correct)) on labelled mappings.

`python -m training.fusion` refits the shipped default (`models/fusion_default/`) on the GEM
*train* split only; the test split stays unseen for benchmarks/mapping.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from models.catalog import Catalog
from models.dense import OnnxEncoder
from models.fusion import DEFAULT_FUSION_DIR, FEATURES, Fusion, LogisticFusion, save_fusion
from models.suggest import Suggester
from training.datasets import gem_icd9_to_icd10, undotted
from training.evaluate import fit_labelled, labelled_pools

# Candidate pools do not depend on the fusion: a suggester needs one, so it gets a placeholder.
UNFITTED = LogisticFusion(np.zeros(len(FEATURES), np.float32), 0.0, "unfitted")


def fit_default_fusion(suggester: Suggester, version: str) -> tuple[Fusion, dict]:
    train = gem_icd9_to_icd10("train")
    dotted = {undotted(c.code): c.code for c in suggester.terminology}
    gold = [{dotted[t] for t in q.targets if t in dotted} for q in train]
    return fit_labelled(labelled_pools(suggester, [q.long_text for q in train], gold, {"billable": True}), version)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, help="name of the new fusion, e.g. fusion-gem9-v5")
    parser.add_argument("--output", type=Path, default=DEFAULT_FUSION_DIR, help="folder to write the fusion into")
    parser.add_argument("--home", type=Path, required=True, help="crosswalk data directory (caches)")
    args = parser.parse_args(argv)
    terminology = Catalog(args.home / "terminologies").get("icd10cm")
    cache = args.home / "cache"
    suggester = Suggester(terminology, OnnxEncoder(export_dir=cache), cache_dir=cache, fusion=UNFITTED, progress=True)
    fusion, report = fit_default_fusion(suggester, args.version)
    args.output.mkdir(parents=True, exist_ok=True)
    for stale in args.output.glob("fusion.*"):
        stale.unlink()
    path = save_fusion(fusion, args.output)
    print(f"wrote {path}: {json.dumps(report)}", file=sys.stderr)


if __name__ == "__main__":
    main()
