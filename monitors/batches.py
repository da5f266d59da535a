"""Read one batch of a feed (CSV, Parquet or FHIR NDJSON) into a DataFrame, or say in one line why not."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from monitors.contract import Contract

# A batch sharing less than this share of the contract's columns is the wrong file, not a schema change.
MIN_SHARED_COLUMNS = 0.5
FHIR_TYPES = ("Observation", "Condition", "MedicationRequest")


class BatchError(ValueError):
    """A batch that cannot be monitored: empty, unparseable, or not this feed's columns."""


def read_batch(path: str | Path, contract: Contract | None = None) -> pd.DataFrame:
    """CSV (.csv, .csv.gz, .tsv), Parquet (.parquet, .pq) or FHIR NDJSON (.ndjson, .jsonl)."""
    path = Path(path)
    if not path.exists():
        raise BatchError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")):
        frame = read_fhir_ndjson(path)
    elif name.endswith((".parquet", ".pq")):
        frame = _read_parquet(path)
    else:
        frame = _read_csv(path)
    if frame.empty:
        raise BatchError(f"{path}: empty batch (no data rows)")
    if contract is not None:
        check_columns(frame, contract, source=str(path))
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    try:
        return pd.read_csv(path, sep=sep, low_memory=False)
    except pd.errors.EmptyDataError:
        raise BatchError(f"{path}: empty batch (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise BatchError(f"{path}: not readable as CSV ({_first_line(error)})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several unrelated types for a corrupt file
        raise BatchError(f"{path}: not readable as Parquet ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_columns(frame: pd.DataFrame, contract: Contract, source: str = "batch") -> None:
    """Raise when the batch is plainly another feed; smaller differences are reported as schema findings."""
    expected = contract.names()
    shared = [c for c in expected if c in frame.columns]
    if expected and len(shared) < MIN_SHARED_COLUMNS * len(expected):
        missing = [c for c in expected if c not in frame.columns]
        raise BatchError(
            f"{source}: wrong columns for feed {contract.feed!r}: {len(shared)} of {len(expected)} expected columns "
            f"present; missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )


# ---- FHIR NDJSON -------------------------------------------------------------------------------------------------


def read_fhir_ndjson(path: str | Path) -> pd.DataFrame:
    """One row per Observation / Condition / MedicationRequest; other resource types are skipped."""
    path = Path(path)
    rows = []
    opener = __import__("gzip").open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    row = _flatten(_parse_line(line, path, number), path, number)
                    if row is not None:
                        rows.append(row)
    except UnicodeDecodeError:
        raise BatchError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise BatchError(f"{path}: empty batch (no {', '.join(FHIR_TYPES)} resources)")
    frame = pd.DataFrame(rows)
    frame["value"] = pd.to_numeric(frame.get("value"), errors="coerce")
    return frame


def _parse_line(line: str, path: Path, number: int) -> dict:
    try:
        resource = json.loads(line)
    except json.JSONDecodeError as error:
        raise BatchError(f"{path} line {number}: invalid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise BatchError(f"{path} line {number}: not a FHIR resource (no resourceType)")
    return resource


def _flatten(resource: dict, path: Path, number: int) -> dict | None:
    kind = resource["resourceType"]
    if kind not in FHIR_TYPES:
        return None
    concept_key = "medicationCodeableConcept" if kind == "MedicationRequest" else "code"
    coding = _first_coding(resource.get(concept_key))
    if coding is None:
        raise BatchError(f"{path} line {number}: {kind} without {concept_key}.coding")
    row = {
        "resource_type": kind,
        "id": resource.get("id"),
        "subject": _reference(resource.get("subject")),
        "code": coding.get("code"),
        "code_system": coding.get("system"),
        "code_display": coding.get("display") or (resource.get(concept_key) or {}).get("text"),
        "site": (resource.get("meta") or {}).get("source"),
    }
    if kind == "Observation":
        quantity = resource.get("valueQuantity") or {}
        performer = resource.get("performer") or [{}]
        row.update(
            value=quantity.get("value"),
            unit=quantity.get("unit") or quantity.get("code"),
            effective=resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start"),
            performer=_reference(performer[0]),
        )
        row["site"] = row["site"] or row["performer"]
    elif kind == "Condition":
        row["onset"] = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
    else:
        row["authored_on"] = resource.get("authoredOn")
    return row


def _first_coding(concept: object) -> dict | None:
    if isinstance(concept, dict) and concept.get("coding"):
        return concept["coding"][0]
    return None


def _reference(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("reference") or value.get("display")
    return None
