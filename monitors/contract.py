"""Data contract: what a feed's columns are, inferred from the reference batch, saved as editable JSON.

The contract tells the profiler and the checks how to treat each column: numbers get moments and a
quantile sketch, codes get value counts and code-system checks, value+unit pairs get per-lab unit checks,
segment columns split everything per site. Inference is a starting point; ops teams edit the JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

KINDS = ("numeric", "categorical", "code", "unit", "date", "text", "id")

SEGMENT_NAMES = ("site", "care_site_id", "sending_facility", "facility", "site_id", "performer_site")
# Codes in these shapes mark a column as holding terminology codes.
CODE_SHAPES = re.compile(
    r"^(\d{1,5}-\d|\d{3}(\.\d{1,2})?|[VE]\d{2,3}(\.\d{1,2})?|[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{1,4})?|\d{6,18})$"
)
DATE_NAME = re.compile(r"(date|time|onset|authored|effective|birth|death)", re.I)
TEXT_NAME = re.compile(r"(text|description|note|display|comment|narrative|reason)", re.I)
TEXT_MIN_LEN = 24  # mean characters above which a high-cardinality string column is free text


class ContractError(ValueError):
    """A contract file that cannot be read or does not fit the data."""


@dataclass
class ColumnSpec:
    name: str
    kind: str  # one of KINDS
    dtype: str  # pandas dtype of the reference column, e.g. "float64", "object"
    null_rate: float = 0.0  # in the reference; informational
    date_format: str | None = None  # strptime format for date columns; None: ISO / mixed
    allowed: list[str] | None = None  # closed value set (edit to enforce); None: open


@dataclass
class ValueUnitPair:
    """A numeric result, its unit, and the code (e.g. LOINC) the unit is conditional on."""

    value: str
    unit: str
    code: str


@dataclass
class Contract:
    columns: list[ColumnSpec]
    segment_columns: list[str] = field(default_factory=list)
    value_unit_pairs: list[ValueUnitPair] = field(default_factory=list)
    row_key_columns: list[str] = field(default_factory=list)  # unique per row; left out of duplicate detection
    feed: str = "default"

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    def names(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns if not kinds or c.kind in kinds]

    @property
    def code_columns(self) -> list[str]:
        return self.names("code")

    @property
    def date_columns(self) -> list[str]:
        return self.names("date")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Contract:
        try:
            columns = [ColumnSpec(**c) for c in data["columns"]]
            pairs = [ValueUnitPair(**p) for p in data.get("value_unit_pairs", [])]
        except (KeyError, TypeError) as error:
            raise ContractError(f"contract: malformed ({error})") from None
        bad = [c.name for c in columns if c.kind not in KINDS]
        if bad:
            raise ContractError(f"contract: unknown kind for column(s) {bad}; expected one of {KINDS}")
        return cls(
            columns=columns,
            segment_columns=list(data.get("segment_columns", [])),
            value_unit_pairs=pairs,
            row_key_columns=list(data.get("row_key_columns", [])),
            feed=data.get("feed", "default"),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise ContractError(f"{path}: not JSON ({error})") from None


def infer_contract(frame: pd.DataFrame, feed: str = "default", segment_columns: list[str] | None = None) -> Contract:
    """Guess each column's role from its name and values. Deterministic; edit the result where it guesses wrong."""
    segments = segment_columns if segment_columns is not None else [c for c in frame.columns if _is_segment(c)]
    columns = [_infer_column(frame[name], name, name in segments) for name in frame.columns]
    contract = Contract(columns=columns, segment_columns=list(segments), feed=feed)
    contract.value_unit_pairs = _infer_pairs(contract)
    for pair in contract.value_unit_pairs:  # the unit column of a pair is checked per code, not as a category
        contract.column(pair.unit).kind = "unit"
    n = len(frame)
    contract.row_key_columns = [
        c.name for c in columns if c.kind == "id" and n > 0 and frame[c.name].nunique(dropna=True) == n
    ]
    return contract


def _is_segment(name: str) -> bool:
    return name.lower() in SEGMENT_NAMES


def _infer_column(series: pd.Series, name: str, is_segment: bool) -> ColumnSpec:
    spec = ColumnSpec(name=name, kind="categorical", dtype=str(series.dtype), null_rate=float(series.isna().mean()))
    lowered = name.lower()
    non_null = series.dropna()
    if is_segment:
        return spec
    if lowered.endswith("_id") and not lowered.endswith("concept_id") or lowered in ("id", "subject"):
        spec.kind = "id"
    elif pd.api.types.is_datetime64_any_dtype(series) or (DATE_NAME.search(lowered) and _parses_as_dates(non_null)):
        spec.kind = "date"
        spec.date_format = _date_format(non_null)
    elif pd.api.types.is_bool_dtype(series):
        spec.kind = "categorical"
    elif pd.api.types.is_numeric_dtype(series):
        spec.kind = "categorical" if lowered.endswith("concept_id") else "numeric"
    elif _looks_like_codes(non_null, lowered):
        spec.kind = "code"
    elif _looks_like_text(non_null) or (TEXT_NAME.search(lowered) and non_null.dtype == object):
        spec.kind = "text"
    return spec


def _sample(values: pd.Series, n: int = 2000) -> pd.Series:
    return values.iloc[:: max(1, len(values) // n)].astype(str)


def _parses_as_dates(values: pd.Series) -> bool:
    if values.empty:
        return False
    parsed = pd.to_datetime(_sample(values), errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def _date_format(values: pd.Series) -> str | None:
    sample = _sample(values)
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d", "%m/%d/%Y"):
        if pd.to_datetime(sample, errors="coerce", format=fmt).notna().mean() > 0.99:
            return fmt
    return None  # ISO-8601 with offsets etc.: parsed as mixed


def _looks_like_codes(values: pd.Series, name: str) -> bool:
    """Named like a code column, or shaped like codes (LOINC, ICD, SNOMED). OMOP's *_source_value columns
    hold codes only sometimes (gender_source_value holds M/F), so the name alone needs half the values
    to be code-shaped."""
    if values.empty or "unit" in name or "value_source" in name:
        return False
    shaped = _sample(values).str.fullmatch(CODE_SHAPES).mean()
    if name in ("code", "icd_code", "loinc", "source_code") or name.endswith("_code"):
        return True
    if name.endswith("_source_value"):
        return bool(shaped >= 0.5)
    return bool(shaped > 0.9 and values.nunique() > 5)


def _looks_like_text(values: pd.Series) -> bool:
    sample = _sample(values)
    return bool(len(sample) and sample.str.len().mean() >= TEXT_MIN_LEN and sample.nunique() > 0.2 * len(sample))


def _infer_pairs(contract: Contract) -> list[ValueUnitPair]:
    """value_as_number + unit_source_value keyed by measurement_source_value; value + unit keyed by code."""
    numeric = contract.names("numeric")
    units = [c.name for c in contract.columns if "unit" in c.name.lower() and c.kind in ("categorical", "code")]
    codes = contract.code_columns
    pairs = []
    for value in numeric:
        if "value" not in value.lower():
            continue
        unit = _closest(value, [u for u in units if not u.lower().endswith("concept_id")] or units)
        code = _closest(value, codes)
        if unit and code:
            pairs.append(ValueUnitPair(value=value, unit=unit, code=code))
    return pairs


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate sharing the longest prefix with `name` (measurement_* with measurement_*), else the first."""
    if not candidates:
        return None
    return max(candidates, key=lambda c: (len(_common_prefix(c, name)), -candidates.index(c)))


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a, b):
        if x != y:
            break
        out.append(x)
    return "".join(out)
