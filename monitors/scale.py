"""Out-of-core scoring on Dask: each partition is profiled where it lives and the profiles are merged in a
tree, so memory holds one partition per worker plus small profiles. Merging is exact (see profile.py), so
the alerts are those of the in-memory path on the same rows."""

from __future__ import annotations

import glob
import time
from pathlib import Path

import pandas as pd

from monitors.batches import BatchError, check_columns
from monitors.contract import Contract
from monitors.profile import Profile, merge_profiles, profile_frame
from monitors.report import MonitorReport, score_profiles
from monitors.rules import PlausibilityRules


def read_dask(path_glob: str, contract: Contract, blocksize: str | int = "64MB"):
    """CSV or Parquet files matching `path_glob` as a dask DataFrame with the contract's columns typed
    consistently across blocks: numbers as float64, everything else as object (per-block inference would
    type a block without nulls as int64 and the next as float64)."""
    import dask
    import dask.dataframe as dd

    files = sorted(glob.glob(path_glob))
    if not files:
        raise BatchError(f"{path_glob}: no files match")
    dask.config.set({"dataframe.convert-string": False})  # object strings, as pandas.read_csv gives
    if all(f.lower().endswith((".parquet", ".pq")) for f in files):
        frame = _read(dd.read_parquet, files, "Parquet", path_glob)
    else:
        dtypes = {c.name: ("float64" if _is_number(c.dtype) else "object") for c in contract.columns}
        compressed = any(f.lower().endswith(".gz") for f in files)  # a gzip stream cannot be split in blocks
        sep = "\t" if all(f.lower().endswith((".tsv", ".tsv.gz")) for f in files) else ","
        frame = _read(
            dd.read_csv,
            files,
            "CSV",
            path_glob,
            sep=sep,
            dtype=dtypes,
            blocksize=None if compressed else blocksize,
            assume_missing=True,
        )
    check_columns(frame, contract, source=path_glob)
    return frame


def _read(reader, files: list[str], kind: str, path_glob: str, **options):
    """The reader's frame, or a BatchError naming the files (dask reads the first block to type columns)."""
    try:
        return reader(files, **options)
    except Exception as error:  # pyarrow and pandas raise several unrelated types for a bad file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BatchError(f"{path_glob}: not readable as {kind} ({reason})") from None


def _is_number(dtype: str) -> bool:
    return dtype.startswith(("int", "float", "uint", "Int", "Float", "UInt"))


def profile_dask(
    ddf, contract: Contract, segment: str | None = None, rules: PlausibilityRules | None = None
) -> Profile:
    """Profile every partition, merge pairwise in a tree (depth log2 of the partition count)."""
    from dask import delayed

    level = [delayed(profile_frame)(part, contract, segment, rules) for part in ddf.to_delayed()]
    while len(level) > 1:
        pairs = [delayed(merge_profiles)(a, b) for a, b in zip(level[::2], level[1::2])]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0].compute()


def score_batch_dask(
    path_glob: str,
    reference: pd.DataFrame | Profile | str,
    contract: Contract,
    *,
    segment: str | None = None,
    rules: PlausibilityRules | None = None,
    blocksize: str | int = "64MB",
    **score_kwargs,
) -> MonitorReport:
    """Like `score_batch`, for a current batch (and optionally a reference) too large for memory.

    Runs on the active dask.distributed client if there is one, else on dask's default scheduler.
    FHIR NDJSON is not read here: convert it to Parquet with `read_batch` first."""
    started = time.perf_counter()
    rules = PlausibilityRules() if rules is None else rules
    segment = segment or (contract.segment_columns[0] if contract.segment_columns else None)
    current = profile_dask(read_dask(path_glob, contract, blocksize), contract, segment, rules)
    if isinstance(reference, (str, Path)):
        reference = profile_dask(read_dask(str(reference), contract, blocksize), contract, segment, rules)
    elif isinstance(reference, pd.DataFrame):
        reference = profile_frame(reference, contract, segment, rules)
    profiled = time.perf_counter()
    report = score_profiles(reference, current, contract, **score_kwargs)
    report.seconds = {"profile": profiled - started, "score": time.perf_counter() - profiled}
    return report
