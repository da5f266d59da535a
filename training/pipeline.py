"""Train a challenger from approved mappings: fine-tune the encoder, refit fusion and calibration.

    base suggester (zero-shot)  --mine hard negatives-->  triplets of the train codes
    bundled MiniLM  --fine_tune-->  new encoder  --encode concept strings once (cached per model)-->
    new suggester + history of the train codes  --fit fusion + Platt on the fit codes-->  challenger
    (served with the history of the train and fit codes; held-out codes are never remembered)

The new encoder's concept embeddings are cached per model version like the bundled model's: the
first suggester of a new version encodes every concept string once (ICD-10-CM: ~120k strings,
~8 min on 2 CPU cores); serving the registered version later reuses that cache.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.dense import TextEncoder
from models.fusion import Fusion, save_fusion
from models.history import ApprovedHistory
from models.suggest import Suggester
from training.evaluate import fit_fusion
from training.finetune import FineTuneConfig, FineTuneResult, fine_tune
from training.sets import ApprovedMapping, Split, _code_hash, mine_hard_negatives, triplets

FINETUNED_NAME = "minilm-ft"  # the encoder's name in its model id: the weights' hash tells versions apart
EncoderFactory = Callable[[Path], TextEncoder]  # fine-tuned model folder -> encoder that serves it
FineTuner = Callable[..., FineTuneResult]


@dataclass(frozen=True)
class TrainConfig:
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    negatives_per_query: int = 3

    def params(self) -> dict[str, object]:
        return {**self.finetune.params(), "negatives_per_query": self.negatives_per_query}


@dataclass
class Challenger:
    suggester: Suggester
    fusion: Fusion
    encoder_dir: Path  # a sentence-transformers model folder
    finetune: FineTuneResult
    calibration: dict[str, float]
    triplets: dict[str, int]
    config: TrainConfig = field(default_factory=TrainConfig)

    @property
    def version(self) -> str:
        return self.fusion.version

    def params(self) -> dict[str, object]:
        """What the MLflow run records of how this challenger was made (beside the release and the gate)."""
        return {
            "base_model": "all-MiniLM-L6-v2",
            "fusion_version": self.fusion.version,
            "device": self.finetune.device,
            **{f"triplets_{k}": v for k, v in self.triplets.items()},
            **self.config.params(),
        }

    def metrics(self) -> dict[str, float]:
        return {
            **self.calibration,
            "finetune_steps": self.finetune.steps,
            "finetune_best_step": self.finetune.best_step,
            "finetune_val_loss_initial": self.finetune.initial_val_loss,
            "finetune_val_loss_best": self.finetune.best_val_loss,
            "finetune_seconds": self.finetune.seconds,
        }


def select_for_pairs(mappings: Sequence[ApprovedMapping], max_pairs: int | None) -> list[ApprovedMapping]:
    """The mappings whose (source, target) pairs fall in the deterministic subsample of `triplets`."""
    if not max_pairs:
        return list(mappings)
    keyed = sorted((_code_hash(f"{m.source_code}>{t}"), i) for i, m in enumerate(mappings) for t in m.targets)
    keep = {i for _, i in keyed[:max_pairs]}
    return [m for i, m in enumerate(mappings) if i in keep]


def train_challenger(
    base: Suggester,
    base_model_dir: Path,
    split: Split,
    out_dir: Path,
    encoder_factory: EncoderFactory,
    cache_dir: Path | None,
    config: TrainConfig = TrainConfig(),
    where: dict | None = None,
    fusion_version: str = "fusion-ft",
    progress: bool = True,
    fine_tuner: FineTuner | None = None,
) -> Challenger:
    display = {c.code: c.display for c in base.terminology}
    max_pairs = config.finetune.max_pairs
    chosen = select_for_pairs(split.train, max_pairs)
    validation = select_for_pairs(split.fit, config.finetune.max_validation)
    _say(
        progress, f"mining hard negatives for {len(chosen) + len(validation)} approved codes with {base.model_version}"
    )
    per = config.negatives_per_query
    train_triplets = triplets(chosen, mine_hard_negatives(base, chosen, per, where), display, max_pairs)
    val_triplets = triplets(validation, mine_hard_negatives(base, validation, per, where), display)
    tuned = (fine_tuner or fine_tune)(
        base_model_dir, out_dir / "encoder", train_triplets, val_triplets, config.finetune, progress=progress
    )
    _say(
        progress,
        f"fine-tuned {tuned.steps} steps in {tuned.seconds:.0f} s; encoding the concept strings with it (once per model)",
    )
    encoder = encoder_factory(tuned.model_dir)
    # The fit codes see only the train codes' history, as a new source sees the approved ones.
    suggester = Suggester(
        base.terminology,
        encoder,
        cache_dir=cache_dir,
        lexical=base.lexical,
        progress=progress,
        fusion=base.fusion,
        history=approved_history(split.train),
    )
    fusion, calibration = fit_fusion(suggester, split.fit, fusion_version, where)
    history = approved_history([*split.train, *split.fit])
    suggester = Suggester(
        base.terminology, encoder, cache_dir=cache_dir, fusion=fusion, lexical=base.lexical, history=history
    )
    save_fusion(fusion, out_dir)
    history.save(out_dir, suggester.history_vectors(), encoder.model_id)
    return Challenger(
        suggester=suggester,
        fusion=fusion,
        encoder_dir=tuned.model_dir,
        finetune=tuned,
        calibration=calibration,
        triplets={"train": len(train_triplets), "validation": len(val_triplets)},
        config=config,
    )


def approved_history(mappings: Sequence[ApprovedMapping]) -> ApprovedHistory:
    return ApprovedHistory([m.query_text() for m in mappings], [list(m.targets) for m in mappings])


def write_manifest(out_dir: Path, data: dict) -> Path:
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)
