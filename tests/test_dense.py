"""Dense matching: the embedding cache, and the bundled MiniLM behind ONNX Runtime."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from models.dense import OnnxEncoder, SentenceTransformerEncoder, cached_embeddings
from tests.conftest import SAMPLES


class CountingEncoder:
    model_id = "counting@1"

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts, progress=False):
        self.seen.extend(texts)
        return np.full((len(texts), 4), 0.5, dtype=np.float32)


def test_a_new_list_encodes_only_its_new_strings(tmp_path):
    encoder = CountingEncoder()
    first, _ = cached_embeddings(encoder, ["Asthma", "Gout"], tmp_path)
    assert encoder.seen == ["asthma", "gout"]  # normalised before encoding
    encoder.seen.clear()
    second, path = cached_embeddings(encoder, ["Gout", "Asthma", "Migraine"], tmp_path)
    assert encoder.seen == ["migraine"]
    assert second.shape == (3, 4) and first.shape == (2, 4)
    assert path.exists() and path.suffix == ".npy"
    encoder.seen.clear()
    cached_embeddings(encoder, ["Gout", "Asthma", "Migraine"], tmp_path)
    assert encoder.seen == []  # the same list again: memory-mapped, nothing encoded


@pytest.mark.slow
def test_onnx_export_reproduces_sentence_transformers(tmp_path):
    texts = ["Paratyphoid fever, unspecified", "Glucose [Mass/volume] in Serum or Plasma", "x"]
    onnx = OnnxEncoder(export_dir=tmp_path).encode(texts)
    reference = SentenceTransformerEncoder().encode(texts)
    assert onnx.shape == reference.shape == (3, 384)
    assert np.all((onnx * reference).sum(axis=1) > 0.9999)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_bundled_model_maps_local_lab_codes_end_to_end(tmp_path):
    """The README's flow on a small terminology: load, suggest, restart without re-encoding."""
    env = {**os.environ, "CROSSWALK_HOME": str(tmp_path / "home")}

    def crosswalk(*args):
        code = "from service.cli import main; main()"
        return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)

    loaded = crosswalk(
        "terminology", "load", "--format", "loinc", str(SAMPLES / "terminologies/loinc/Loinc.csv"), "--name", "loinc"
    )
    assert loaded.returncode == 0, loaded.stderr
    source = tmp_path / "lab.csv"
    source.write_text(
        "source_code,source_text,specimen,unit\nGLU,Glucose,Serum,mg/dL\nHGB,Hgb,Blood,g/dL\nK,Potassium,Ser/Plas,mmol/L\n"
    )
    out = tmp_path / "out.csv"
    first = crosswalk("suggest", "-t", "loinc", "-i", str(source), "-o", str(out), "--top", "3")
    assert first.returncode == 0, first.stderr
    top = {r["source_code"]: r["target_code"] for r in csv.DictReader(out.open()) if r["rank"] == "1"}
    assert top == {"GLU": "2345-7", "HGB": "718-7", "K": "2823-3"}

    cached = list((tmp_path / "home" / "cache" / "embeddings").glob("*/*.npy"))
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    again = crosswalk("suggest", "-t", "loinc", "-i", str(source), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps  # a restart re-encodes nothing
