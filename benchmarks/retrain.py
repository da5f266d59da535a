"""Retraining benchmark: GEM train split as a team's approved history, zero-shot vs retrained on the test split.

The CMS GEM ICD-9-CM -> ICD-10-CM pairs of the *train* split (ICD-9 codes with
`int(sha1(code), 16) % 5 != 0`, long descriptions) stand in for approved mappings. The challenger is
trained on them exactly as `crosswalk train --release N` trains on a release (training/pipeline.py):
hard negatives mined with the zero-shot model, MiniLM fine-tuned with MultipleNegativesRankingLoss on
a deterministic subsample of the pairs, fusion (linear + trees) refitted and Platt-calibrated on a
quarter of the train codes the encoder never saw, with the other codes' approved history; the
challenger serves with the history of all train-split codes. Both models are then evaluated on the *test* split with the code of
benchmarks/mapping.py (same queries, billable targets, acc@k and MRR@10), in one run.

Cost on 2 CPU cores (measured, see README): fine-tuning on all 11,927 pairs is 372 steps, 6-12 min
(1.0-1.7 s a step, validation included; --max-pairs, --epochs); a new encoder must then encode ICD-10-CM's
~120k concept strings once (3.5-7 min), cached per model version under the home's cache, so a rerun
with the same weights skips it. The zero-shot model's cache must exist (`crosswalk demo` builds it).

    python benchmarks/retrain.py [--max-pairs 12000] [--epochs 1] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mapping import BILLABLE, build_suggester, latencies_ms, ranking_metrics  # noqa: E402

from models.dense import OnnxEncoder, bundled_model_path  # noqa: E402
from models.items import SourceItem  # noqa: E402
from training.datasets import gem_icd9_to_icd10, undotted  # noqa: E402
from training.evaluate import expected_calibration_error  # noqa: E402
from training.finetune import FineTuneConfig  # noqa: E402
from training.pipeline import FINETUNED_NAME, TrainConfig, train_challenger  # noqa: E402
from training.sets import data_hash, gem_mappings, split_by_code  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def evaluate_on_test(suggester, test) -> dict[str, float]:
    """benchmarks/mapping.py's evaluation, plus the ECE of the top suggestion's score."""
    started = time.perf_counter()
    results = suggester.suggest([SourceItem(q.source_code, q.long_text) for q in test], top_k=10, where=BILLABLE)
    undotted_top = [[undotted(s.code) for s in r] for r in results]  # GEM targets are written without dots
    figures = ranking_metrics(undotted_top, [set(q.targets) for q in test])
    figures["batch_terms_per_s"] = len(test) / (time.perf_counter() - started)
    top = [(r[0].score, undotted(r[0].code) in q.targets) for r, q in zip(results, test)]
    figures["ece"] = expected_calibration_error([c for c, _ in top], [h for _, h in top])
    figures["latency_p50_ms"], figures["latency_p95_ms"] = latencies_ms(suggester, [q.long_text for q in test[:300]])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("CROSSWALK_HOME", Path.home() / ".crosswalk")))
    parser.add_argument(
        "--max-pairs", type=int, default=12000, help="pairs to fine-tune on (12,000: all of the GEM train split)"
    )
    parser.add_argument("--epochs", type=int, default=FineTuneConfig.epochs)
    parser.add_argument("--learning-rate", type=float, default=FineTuneConfig.learning_rate)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    f: dict[str, object] = {}
    zero_shot, f["load_s"] = build_suggester(args.home)
    test = gem_icd9_to_icd10("test")
    f["test_queries"] = len(test)
    f["zero_shot"] = evaluate_on_test(zero_shot, test)
    print(f"zero-shot: {json.dumps(f['zero_shot'])}", file=sys.stderr)

    billable = {undotted(c.code): c.code for c in zero_shot.terminology if c.attributes.get("billable")}
    history = gem_mappings(gem_icd9_to_icd10("train"), billable)
    split = split_by_code(history)
    assert not split.heldout, "the GEM train split holds no test code"
    f["approved_history"] = {"codes": len(history), **split.sizes(), "data_sha256": data_hash(history)}
    config = TrainConfig(FineTuneConfig(max_pairs=args.max_pairs, epochs=args.epochs, learning_rate=args.learning_rate))
    cache = args.home / "cache"
    out = cache / "benchmark-retrain" / f"{data_hash(history)[:8]}-{args.max_pairs}-{args.epochs}-{args.learning_rate}"
    started = time.perf_counter()
    challenger = train_challenger(
        zero_shot,
        bundled_model_path(),
        split,
        out,
        lambda model_dir: OnnxEncoder(model_dir=model_dir, export_dir=cache, name=FINETUNED_NAME),
        cache,
        config,
        where=BILLABLE,
        fusion_version="fusion-ft-gem9",
        progress=True,
    )
    f["training"] = {
        "total_s": time.perf_counter() - started,  # mining + fine-tune + concept encoding + fusion/calibration
        "finetune_s": challenger.finetune.seconds,
        "finetune_steps": challenger.finetune.steps,
        "finetune_best_step": challenger.finetune.best_step,
        "stopped_early": challenger.finetune.stopped_early,
        "triplets": challenger.triplets,
        "val_loss": [challenger.finetune.initial_val_loss, challenger.finetune.best_val_loss],
        "device": challenger.finetune.device,
        "calibration": challenger.calibration,
        "peak_rss_mb": peak_rss_mb(),
    }
    f["retrained"] = evaluate_on_test(challenger.suggester, test)
    f["peak_rss_mb"] = peak_rss_mb()
    f["config"] = config.params()
    report(f)
    if args.json:
        args.json.write_text(json.dumps(f, indent=2, default=str))


def report(f: dict) -> None:
    h, t = f["approved_history"], f["training"]
    print(
        f"\nGEM ICD-9-CM -> ICD-10-CM, test split ({f['test_queries']} codes, long descriptions, billable targets); "
        f"approved history: {h['codes']} train-split codes ({h['train']} train the encoder, {h['fit']} fit fusion + calibration)"
    )
    print(
        f"{'':12} {'acc@1':>6} {'acc@5':>6} {'acc@10':>6} {'MRR@10':>7} {'ECE':>6} {'p50 ms':>7} {'p95 ms':>7} {'terms/s':>8}"
    )
    for name in ("zero_shot", "retrained"):
        m = f[name]
        print(
            f"{name:12} {m['acc@1']:6.3f} {m['acc@5']:6.3f} {m['acc@10']:6.3f} {m['mrr@10']:7.3f} {m['ece']:6.3f} "
            f"{m['latency_p50_ms']:7.1f} {m['latency_p95_ms']:7.1f} {m['batch_terms_per_s']:8.0f}"
        )
    print(
        f"\ntraining: {t['triplets']['train']} triplets, {t['finetune_steps']} steps (best {t['finetune_best_step']}, "
        f"early stop: {t['stopped_early']}) on {t['device']}: fine-tune {t['finetune_s']:.0f} s; mining + fine-tune + "
        f"encoding the concept strings + fusion/calibration {t['total_s']:.0f} s"
    )
    c = t["calibration"]
    print(f"calibration (fit codes): ECE {c['fit_ece_uncalibrated']:.3f} -> {c['fit_ece_calibrated']:.3f} after Platt")
    print(f"peak RSS: {t['peak_rss_mb']:.0f} MB after training, {f['peak_rss_mb']:.0f} MB at the end (one process)")


if __name__ == "__main__":
    main()
