"""A real fine-tune of MiniLM for a few steps, served through the same ONNX path as the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from models.dense import OnnxEncoder, SentenceTransformerEncoder, bundled_model_path
from training.finetune import FineTuneConfig, fine_tune
from training.pipeline import FINETUNED_NAME
from training.sets import Triplet


@pytest.mark.slow
def test_fine_tuned_minilm_is_served_by_onnx_like_the_bundled_one(tmp_path):
    pairs = [
        Triplet(
            "t2dm without complication",
            "type 2 diabetes mellitus without complications",
            "type 2 diabetes mellitus with hyperglycemia",
        ),
        Triplet("htn", "essential primary hypertension", "pneumonia unspecified organism"),
        Triplet("uti", "urinary tract infection site not specified", "essential primary hypertension"),
        Triplet("lung ca", "malignant neoplasm of bronchus or lung", "pneumonia unspecified organism"),
    ] * 4
    config = FineTuneConfig(batch_size=4, eval_every=2, patience=10, learning_rate=1e-4, device="cpu")
    result = fine_tune(bundled_model_path(), tmp_path / "encoder", pairs, pairs[:4], config, progress=False)
    assert result.steps == 4 and result.device == "cpu"
    assert result.best_val_loss < result.initial_val_loss  # it learned the pairs it was shown

    tuned = OnnxEncoder(model_dir=result.model_dir, export_dir=tmp_path / "cache", name=FINETUNED_NAME)
    bundled = SentenceTransformerEncoder()
    assert tuned.model_id.split("@")[1] != bundled.model_id.split("@")[1]  # new weights: embeddings cached apart
    texts = ["htn", "essential primary hypertension", "type 2 diabetes mellitus with hyperglycemia"]
    onnx = tuned.encode(texts)
    reference = SentenceTransformerEncoder(result.model_dir).encode(texts)
    assert np.all(np.sum(onnx * reference, axis=1) > 0.9999)
    before = bundled.encode(texts[:2])
    assert float(onnx[0] @ onnx[1]) > float(before[0] @ before[1])  # the abbreviation moved towards its target
