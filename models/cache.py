"""On-disk caches keyed by content: the same strings and the same model give the same file."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def fingerprint(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    # Write beside, then rename: a killed process never leaves a truncated cache file behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)


def write_json(path: Path, value: object) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(value)))


def cached_array(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """A float array memory-mapped from `path`, computed and saved the first time."""
    if path is None:
        return compute()
    if not path.exists():
        array = compute()
        _atomic(path, lambda tmp: np.save(tmp.open("wb"), array))
    return np.load(path, mmap_mode="r")


def cached_object(path: Path | None, compute: Callable[[], T]) -> T:
    """A pickled object of crosswalk's own making (never load a pickle from elsewhere)."""
    if path is None:
        return compute()
    if path.exists():
        with path.open("rb") as handle:
            return pickle.load(handle)
    value = compute()
    _atomic(path, lambda tmp: tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
    return value
