"""Fine-tune the bi-encoder on (query, approved target, hard negative) triplets.

sentence-transformers' MultipleNegativesRankingLoss: each query must score its approved target above
the batch's other targets and above its own hard negative. The loop is written out (no
SentenceTransformerTrainer) because the trainer needs `datasets` and `accelerate`, which crosswalk
does not otherwise install, and because this loop is all the trainer would do here: shuffle, step,
watch a validation loss, stop early and keep the best weights.

CPU by default, the GPU when torch sees one; the output folder is a plain sentence-transformers
model, which `models.dense.OnnxEncoder` exports to ONNX and serves like the bundled one.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from training.sets import Triplet


@dataclass(frozen=True)
class FineTuneConfig:
    max_pairs: int = (
        4000  # subsample: 125 steps, ~2 min on 2 quiet CPU cores (measured 1.0 s a step; 20 min on a busy machine)
    )
    epochs: int = 1
    batch_size: int = 32  # in-batch negatives: 31 other targets + 32 hard negatives per query
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = (
        64  # clinical titles are short; 64 word pieces cut almost nothing and train ~2x faster than 256
    )
    # Validation: 256 triplets were too noisy (+-0.03 a check), and stopped a GEM run at step 175 of
    # 372 while its loss was still to fall from 1.125 to 1.075. 1,024 every 50 steps costs ~8 s a check.
    eval_every: int = 50  # steps between validation losses
    patience: int = 3  # validations without improvement before stopping
    max_validation: int = 1024  # validation triplets: bounds the cost of each check
    seed: int = 13
    device: str | None = None  # None: "cuda" when torch sees a GPU, else "cpu"

    def params(self) -> dict[str, object]:
        return {f"finetune_{k}": v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FineTuneResult:
    model_dir: Path
    pairs: int
    steps: int
    best_step: int
    initial_val_loss: float
    best_val_loss: float
    stopped_early: bool
    seconds: float
    device: str


def pick_device(requested: str | None = None) -> str:
    import torch

    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def fine_tune(
    base_dir: Path,
    out_dir: Path,
    train: Sequence[Triplet],
    validation: Sequence[Triplet],
    config: FineTuneConfig = FineTuneConfig(),
    progress: bool = True,
) -> FineTuneResult:
    """Train from the weights in `base_dir`; write the best weights (by validation loss) to `out_dir`."""
    if not train:
        raise ValueError("no training pairs: the release has no approved mapping with a usable hard negative")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    started = time.perf_counter()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = SentenceTransformer(str(base_dir), local_files_only=True, device=device)
    model.max_seq_length = config.max_seq_length
    loss = MultipleNegativesRankingLoss(model)
    validation = list(validation)[: config.max_validation] or list(train)[: config.max_validation]
    batches_per_epoch = max(len(train) // config.batch_size, 1)
    total = batches_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)

    def batch_loss(batch: Sequence[Triplet]):
        columns = [[t.anchor for t in batch], [t.positive for t in batch], [t.negative for t in batch]]
        features = [
            {k: v.to(device) if hasattr(v, "to") else v for k, v in model.preprocess(c).items()} for c in columns
        ]
        return loss(features, None)

    def validation_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [
                float(batch_loss(validation[i : i + config.batch_size])) * len(validation[i : i + config.batch_size])
                for i in range(0, len(validation), config.batch_size)
            ]
        model.train()
        return sum(losses) / len(validation)

    initial = best = validation_loss()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_step, stale, step, stopped = 0, 0, 0, False
    order = list(train)
    rng = random.Random(config.seed)
    bar = tqdm(total=total, desc="fine-tuning", unit="step", file=sys.stderr, disable=not progress)
    model.train()
    for _epoch in range(config.epochs):
        rng.shuffle(order)
        for start in range(0, batches_per_epoch * config.batch_size, config.batch_size):
            value = batch_loss(order[start : start + config.batch_size])
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            bar.update(1)
            if step % config.eval_every == 0 or step == total:
                current = validation_loss()
                bar.set_postfix(loss=f"{float(value.detach()):.3f}", val=f"{current:.3f}", best=f"{best:.3f}")
                if current < best - 1e-4:
                    best, best_step, stale = current, step, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                if stale >= config.patience:
                    stopped = True
                    break
        if stopped:
            break
    bar.close()
    model.load_state_dict(best_state)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    return FineTuneResult(
        model_dir=out_dir,
        pairs=len(train),
        steps=step,
        best_step=best_step,
        initial_val_loss=initial,
        best_val_loss=best,
        stopped_early=stopped,
        seconds=time.perf_counter() - started,
        device=device,
    )
