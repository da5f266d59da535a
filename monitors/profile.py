"""Mergeable per-column, per-segment profiles: a batch is read once, a window is a merge of batch profiles.

Everything here is a count or a sum, so `merge` is associative and commutative: integer counts and sketch
buckets add exactly, moments combine with Chan's formula (equal up to float rounding), min/max and the
duplicate sketch's registers take maxima. Quantiles and distances come from a DDSketch-style log-bucket
histogram (1% relative accuracy), which, unlike a reservoir sample, merges exactly and stays small
(a few hundred buckets per column).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitors.contract import Contract
from monitors.lab import parse_results
from monitors.rules import PlausibilityRules, evaluate_rules

# The stored shape of a profile (`Profile.to_dict`). Bump it when that shape changes, and add a step to
# MIGRATIONS that lifts the previous version's dict; profiles saved before versions were recorded are 1.
PROFILE_SCHEMA = 2
ALL = "*"  # the segment key of the whole batch
MISSING_SEGMENT = "(missing)"
MAX_VALUES = 5000  # distinct values kept per categorical column; beyond it the rarest go to `other`
SKETCH_ACCURACY = 0.01
GAMMA = (1 + SKETCH_ACCURACY) / (1 - SKETCH_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
KEY_OFFSET = 20_000  # keeps bucket keys of |x| >= 1e-9 positive, so the sign can ride on the key
TINY = 1e-9
HLL_P = 14  # 16,384 registers: 0.8% error on distinct rows at large n, near-exact below ~40k rows
SHAPE_MAX = 24
PATIENT_SAMPLE = 256  # patients kept per (code, unit): the smallest id hashes, so every profile keeps the same ones


# ---- quantile sketch ----------------------------------------------------------------------------------------------


def sketch_keys(values: np.ndarray) -> np.ndarray:
    magnitude = np.abs(values)
    keys = np.ceil(np.log(np.maximum(magnitude, TINY)) / LOG_GAMMA).astype(np.int64) + KEY_OFFSET
    keys = np.where(magnitude < TINY, 0, keys)
    return np.where(values < 0, -keys, keys)


def key_values(keys: np.ndarray) -> np.ndarray:
    """Each bucket's representative value (relative error <= SKETCH_ACCURACY)."""
    keys = np.asarray(keys, dtype=np.int64)
    magnitude = 2.0 * np.power(GAMMA, np.abs(keys) - KEY_OFFSET) / (GAMMA + 1.0)
    return np.where(keys == 0, 0.0, np.sign(keys) * magnitude)


def _counts_dict(keys: np.ndarray) -> dict[int, int]:
    unique, counts = np.unique(keys, return_counts=True)
    return dict(zip(unique.tolist(), counts.tolist()))


@dataclass
class NumericStats:
    n: int
    mean: float
    m2: float  # sum of squared deviations from the mean
    min: float
    max: float
    sketch: dict[int, int]  # bucket key -> count

    @classmethod
    def of(cls, values: np.ndarray) -> NumericStats | None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        mean = float(values.mean())
        return cls(
            n=int(values.size),
            mean=mean,
            m2=float(((values - mean) ** 2).sum()),
            min=float(values.min()),
            max=float(values.max()),
            sketch=_counts_dict(sketch_keys(values)),
        )

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket values ascending, counts)."""
        keys = np.fromiter(self.sketch.keys(), dtype=np.int64, count=len(self.sketch))
        counts = np.fromiter(self.sketch.values(), dtype=np.float64, count=len(self.sketch))
        values = key_values(keys)
        order = np.argsort(values)
        return values[order], counts[order]

    def quantile(self, q: float) -> float:
        values, counts = self.support()
        cumulative = np.cumsum(counts)
        return float(values[min(np.searchsorted(cumulative, q * cumulative[-1], side="left"), len(values) - 1)])


def merge_numeric(a: NumericStats | None, b: NumericStats | None) -> NumericStats | None:
    if a is None or b is None:
        return a or b
    n = a.n + b.n
    delta = b.mean - a.mean
    return NumericStats(
        n=n,
        mean=a.mean + delta * b.n / n,
        m2=a.m2 + b.m2 + delta * delta * a.n * b.n / n,
        min=min(a.min, b.min),
        max=max(a.max, b.max),
        sketch=_add(a.sketch, b.sketch),
    )


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


def _cap(counts: dict[str, int], other: int) -> tuple[dict[str, int], int]:
    if len(counts) <= MAX_VALUES:
        return counts, other
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:MAX_VALUES]), other + sum(c for _, c in ranked[MAX_VALUES:])


# ---- duplicate-row sketch (HyperLogLog over row hashes) -----------------------------------------------------------


def hll_registers(hashes: np.ndarray) -> np.ndarray:
    registers = np.zeros(1 << HLL_P, dtype=np.uint8)
    if hashes.size == 0:
        return registers
    hashes = hashes.astype(np.uint64, copy=False)
    index = (hashes >> np.uint64(64 - HLL_P)).astype(np.int64)
    rest = (hashes << np.uint64(HLL_P)) | np.uint64(1 << (HLL_P - 1))
    rank = (64 - np.floor(np.log2(rest.astype(np.float64)))).astype(np.uint8)
    np.maximum.at(registers, index, rank)
    return registers


def hll_estimate(registers: np.ndarray) -> float:
    m = registers.size
    alpha = 0.7213 / (1 + 1.079 / m)
    estimate = alpha * m * m / float(np.power(2.0, -registers.astype(np.float64)).sum())
    zeros = int((registers == 0).sum())
    if estimate <= 2.5 * m and zeros:
        return m * math.log(m / zeros)  # linear counting: near-exact for small batches
    return estimate


# ---- profiles -----------------------------------------------------------------------------------------------------


@dataclass
class ColumnProfile:
    count: int  # rows
    nulls: int
    dtype: str  # '|'-joined set of pandas dtypes seen (a merge of int64 and object batches reads 'int64|object')
    numeric: NumericStats | None = None
    values: dict[str, int] | None = None  # value counts (categorical, code, unit, text)
    other: int = 0  # non-null values dropped from `values` by MAX_VALUES
    shapes: dict[str, int] | None = None  # format shape (digits->9, letters->A/a) -> count
    unparsed: int = 0  # non-null values not of the column's contract type (text in a number, bad date)
    date_min: str | None = None
    date_max: str | None = None

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0


# patient id hash -> (rows, sum of values, sum of squared values) of one analyte
PatientSums = dict[int, tuple[int, float, float]]


@dataclass
class PairProfile:
    """Per (code, unit): row counts and value stats, e.g. ('2339-0', 'mg/dL'); with a patient column, also each
    patient's rows, sum and sum of squares for a bottom-k sample of patients by id hash (every profile keeps the
    smallest hashes, so the patients a large reference keeps are kept by any smaller batch that has them, and
    merges stay exact)."""

    value: str
    unit: str
    code: str
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    stats: dict[tuple[str, str], NumericStats] = field(default_factory=dict)
    patients: dict[tuple[str, str], PatientSums] = field(default_factory=dict)

    def units(self, code: str) -> dict[str, int]:
        return {u: n for (c, u), n in self.counts.items() if c == code}

    def codes(self) -> set[str]:
        return {c for c, _ in self.counts}


@dataclass
class SegmentProfile:
    n_rows: int
    columns: dict[str, ColumnProfile]
    pairs: list[PairProfile]
    hll: np.ndarray
    rules: dict[str, list[int]] = field(default_factory=dict)  # rule -> [checked, violated]

    @property
    def duplicate_rate(self) -> float:
        if self.n_rows == 0:
            return 0.0
        return max(0.0, 1.0 - min(hll_estimate(self.hll), self.n_rows) / self.n_rows)


@dataclass
class Profile:
    segment_column: str | None
    segments: dict[str, SegmentProfile]  # segment value -> profile; the whole batch is merge of all
    n_batches: int = 1

    def overall(self) -> SegmentProfile:
        parts = list(self.segments.values())
        out = parts[0]
        for part in parts[1:]:
            out = merge_segments(out, part)
        return out

    def segment(self, key: str) -> SegmentProfile | None:
        return self.overall() if key == ALL else self.segments.get(key)

    @property
    def n_rows(self) -> int:
        return sum(s.n_rows for s in self.segments.values())

    def to_dict(self) -> dict:
        return {
            "schema": PROFILE_SCHEMA,
            "segment_column": self.segment_column,
            "n_batches": self.n_batches,
            "segments": {k: _segment_to_dict(v) for k, v in self.segments.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        """A stored profile, lifted from an older schema; a newer or unknown one raises ProfileSchemaError."""
        data = upgrade_profile_dict(data)
        segments = {k: _segment_from_dict(v) for k, v in data["segments"].items()}
        return cls(data["segment_column"], segments, data.get("n_batches", 1))


class ProfileSchemaError(ValueError):
    """A stored profile this version cannot read (written by a newer crosswalk, or not a profile)."""


def _add_patient_sums(data: dict) -> dict:
    """Schema 1 -> 2: lab pairs gained per-patient sums (none recorded before)."""
    for segment in data["segments"].values():
        for pair in segment["pairs"]:
            pair.setdefault("patients", [])
    return {**data, "schema": 2}


# version -> the step that lifts a dict of that version to the next one.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _add_patient_sums}


def upgrade_profile_dict(data: dict) -> dict:
    version = data.get("schema", 1)
    if not isinstance(version, int) or version < 1:
        raise ProfileSchemaError(f"unknown profile schema {version!r}; this crosswalk reads 1 to {PROFILE_SCHEMA}")
    if version > PROFILE_SCHEMA:
        raise ProfileSchemaError(
            f"profile schema {version} is newer than this crosswalk reads ({PROFILE_SCHEMA}); upgrade crosswalk"
        )
    while version < PROFILE_SCHEMA:
        data, version = MIGRATIONS[version](data), version + 1
    return data


# ---- building one profile -----------------------------------------------------------------------------------------


def profile_frame(
    frame: pd.DataFrame,
    contract: Contract,
    segment_column: str | None = None,
    rules: PlausibilityRules | None = None,
) -> Profile:
    """Profile a batch once, split by `segment_column` (default: the contract's first segment column)."""
    if segment_column is None and contract.segment_columns:
        segment_column = contract.segment_columns[0]
    if segment_column is not None and segment_column not in frame.columns:
        segment_column = None
    hashes = _row_hashes(frame, contract)
    if segment_column is None:
        return Profile(None, {ALL: profile_segment(frame, contract, rules, hashes)})
    keys = frame[segment_column].astype("string").fillna(MISSING_SEGMENT)
    segments = {}
    for key, index in keys.groupby(keys, sort=True).indices.items():
        part = frame.iloc[index]
        segments[str(key)] = profile_segment(part, contract, rules, hashes[index])
    return Profile(segment_column, segments)


def _row_hashes(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    columns = [c for c in frame.columns if c not in contract.row_key_columns]
    if not columns:
        return np.zeros(len(frame), dtype=np.uint64)
    # numbers hash as float64: the same rows read as int64 by one reader and float64 by another are one row
    view = frame[columns].apply(lambda s: s.astype(np.float64) if _plain_number(s) else s)
    return pd.util.hash_pandas_object(view, index=False).to_numpy()


def _plain_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def profile_segment(
    frame: pd.DataFrame, contract: Contract, rules: PlausibilityRules | None, hashes: np.ndarray
) -> SegmentProfile:
    columns = {}
    for name in frame.columns:
        spec = contract.column(name)
        columns[name] = profile_column(frame[name], spec.kind if spec else _kind_of(frame[name]), spec)
    patient = contract.patient_column if contract.patient_column in frame.columns else None
    patients = patient_hashes(frame[patient]) if patient else None
    pairs = [
        _profile_pair(frame, p.value, p.unit, p.code, patients)
        for p in contract.value_unit_pairs
        if {p.value, p.unit, p.code} <= set(frame.columns)
    ]
    triples = [(p.value, p.unit, p.code) for p in contract.value_unit_pairs]
    checked = evaluate_rules(frame, rules, triples, contract.date_columns, contract.code_columns) if rules else {}
    return SegmentProfile(len(frame), columns, pairs, hll_registers(hashes), checked)


def _kind_of(series: pd.Series) -> str:
    """Kind for a column the contract does not know (a new column): enough to profile it."""
    return (
        "numeric" if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) else "categorical"
    )


def profile_column(series: pd.Series, kind: str, spec=None) -> ColumnProfile:
    nulls = int(series.isna().sum())
    profile = ColumnProfile(count=len(series), nulls=nulls, dtype=str(series.dtype))
    non_null = series.dropna()
    if kind == "numeric":
        numbers, non_numeric = parse_results(non_null)
        profile.unparsed = int(non_numeric.sum())
        profile.numeric = NumericStats.of(numbers)
        if profile.unparsed:  # NEG, POS, "see note": the non-numeric results are a category of their own
            counts = non_null[non_numeric].astype(str).str.strip().value_counts(sort=False)
            profile.values, profile.other = _cap(dict(zip(counts.index.tolist(), counts.to_numpy().tolist())), 0)
    elif kind == "date":
        _profile_dates(profile, non_null, spec.date_format if spec else None)
    elif kind != "id":
        counts = non_null.value_counts(sort=False)
        counts.index = _value_labels(counts.index)
        counts = counts.groupby(level=0, sort=False).sum()  # '1' and 1.0 read from two files are one value
        profile.shapes = _shape_counts(counts)
        profile.values, profile.other = _cap(dict(zip(counts.index.tolist(), counts.to_numpy().tolist())), 0)
    return profile


def code_labels(series: pd.Series) -> np.ndarray:
    """Codes as strings, the way value counts label them: 50912.0 (an integer column with gaps) reads 50912."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if np.all(np.mod(values[finite], 1) == 0):
            out = np.full(len(values), "", dtype=object)
            out[finite] = values[finite].astype(np.int64).astype(str)
            return out
    return series.astype("string").fillna("").to_numpy(dtype=object)


def _value_labels(index: pd.Index) -> pd.Index:
    if pd.api.types.is_float_dtype(index) and len(index) and np.all(np.mod(index.to_numpy(), 1) == 0):
        return index.astype(np.int64).astype(str)  # 9529.0 (a column with NaN) and 9529 are one code
    return index.astype(str)


def shape_of(values: pd.Index | pd.Series) -> pd.Series:
    text = pd.Series(values, dtype="string").str.slice(0, SHAPE_MAX)
    return (
        text.str.replace(r"\d", "9", regex=True)
        .str.replace(r"[A-Z]", "A", regex=True)
        .str.replace(r"[a-z]", "a", regex=True)
    )


def _shape_counts(counts: pd.Series) -> dict[str, int]:
    if counts.empty:
        return {}
    shapes = shape_of(counts.index)
    grouped = pd.Series(counts.to_numpy(), index=shapes.to_numpy()).groupby(level=0).sum()
    return dict(zip(grouped.index.tolist(), grouped.to_numpy().tolist()))


def _profile_dates(profile: ColumnProfile, non_null: pd.Series, date_format: str | None) -> None:
    if pd.api.types.is_datetime64_any_dtype(non_null):
        parsed = non_null
    else:
        text = non_null.astype(str)
        parsed = pd.to_datetime(text, errors="coerce", format=date_format or "mixed", utc=date_format is None)
    profile.unparsed = int(parsed.isna().sum())
    valid = parsed.dropna()
    if len(valid):
        profile.date_min, profile.date_max = str(valid.min()), str(valid.max())


def patient_hashes(series: pd.Series) -> np.ndarray:
    """A non-negative 63-bit hash per patient id (-1 where missing); 123, 123.0 and "123" hash alike."""
    present = series.notna().to_numpy()
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    integral = np.isfinite(numbers) & (np.mod(numbers, 1) == 0)
    out = np.full(len(series), -1, dtype=np.int64)
    if integral[present].all():
        hashed = pd.util.hash_array(numbers[present].astype(np.int64))
    else:
        hashed = pd.util.hash_array(series[present].astype(str).str.strip().to_numpy(dtype=object))
    out[present] = (hashed >> np.uint64(1)).astype(np.int64)
    return out


def _profile_pair(
    frame: pd.DataFrame, value: str, unit: str, code: str, patients: np.ndarray | None = None
) -> PairProfile:
    codes = code_labels(frame[code])
    units = frame[unit].astype("string").fillna("").to_numpy(dtype=object)
    numbers, _ = parse_results(frame[value])
    table = pd.DataFrame({"code": codes, "unit": units, "value": numbers})
    counts = table.groupby(["code", "unit"], sort=False).size()
    pair = PairProfile(value, unit, code, counts={k: int(v) for k, v in counts.items()})
    valued = table[np.isfinite(numbers)]
    if valued.empty:
        return pair
    valued = valued.assign(key=sketch_keys(valued["value"].to_numpy()))
    grouped = valued.groupby(["code", "unit"], sort=False)["value"]
    moments = grouped.agg(["count", "mean", "var", "min", "max"])
    buckets = valued.groupby(["code", "unit", "key"], sort=False).size()
    sketches: dict[tuple[str, str], dict[int, int]] = {}
    for (c, u, k), n in zip(buckets.index.tolist(), buckets.to_numpy().tolist()):
        sketches.setdefault((c, u), {})[k] = n
    for (c, u), row in zip(moments.index.tolist(), moments.itertuples(index=False)):
        n = int(row.count)
        m2 = float(row.var) * (n - 1) if n > 1 else 0.0
        pair.stats[(c, u)] = NumericStats(n, float(row.mean), m2, float(row.min), float(row.max), sketches[(c, u)])
    if patients is not None:
        group = grouped.ngroup().to_numpy()  # numbered in the order of moments.index (first appearance)
        sums = _patient_sums(group, patients[np.isfinite(numbers)], valued["value"].to_numpy())
        pair.patients = {moments.index[g]: found for g, found in sums.items()}
    return pair


def _patient_sums(group: np.ndarray, patients: np.ndarray, values: np.ndarray) -> dict[int, PatientSums]:
    """Rows, sum and sum of squares per (group, patient), for each group the PATIENT_SAMPLE smallest patient
    hashes. Sorted once with numpy: grouping on the object-typed code and unit columns again costs more."""
    known = patients >= 0
    if not known.any():
        return {}
    group, patients, values = group[known], patients[known], values[known]
    order = np.lexsort((patients, group))
    group, patients, values = group[order], patients[order], values[order]
    starts = np.flatnonzero(np.r_[True, (group[1:] != group[:-1]) | (patients[1:] != patients[:-1])])
    counts = np.diff(np.r_[starts, group.size])
    totals, squares = np.add.reduceat(values, starts), np.add.reduceat(values**2, starts)
    owners = group[starts]
    rank = np.arange(starts.size) - np.searchsorted(owners, owners)  # position of the patient within its group
    out: dict[int, PatientSums] = {}
    for i in np.flatnonzero(rank < PATIENT_SAMPLE).tolist():
        out.setdefault(int(owners[i]), {})[int(patients[starts[i]])] = (
            int(counts[i]),
            float(totals[i]),
            float(squares[i]),
        )
    return out


def merge_patient_sums(a: PatientSums | None, b: PatientSums | None) -> PatientSums:
    """The same patient's rows add up; then the PATIENT_SAMPLE smallest hashes stay."""
    out = dict(a or {})
    for h, (n, total, squares) in (b or {}).items():
        old = out.get(h, (0, 0.0, 0.0))
        out[h] = (old[0] + n, old[1] + total, old[2] + squares)
    if len(out) > PATIENT_SAMPLE:
        out = {h: out[h] for h in sorted(out)[:PATIENT_SAMPLE]}
    return out


# ---- merging ------------------------------------------------------------------------------------------------------


def merge_columns(a: ColumnProfile, b: ColumnProfile) -> ColumnProfile:
    values, other = None, a.other + b.other
    if a.values is not None or b.values is not None:
        values, other = _cap(_add(a.values or {}, b.values or {}), other)
    shapes = _add(a.shapes or {}, b.shapes or {}) if (a.shapes is not None or b.shapes is not None) else None
    dates_min = [d for d in (a.date_min, b.date_min) if d]
    dates_max = [d for d in (a.date_max, b.date_max) if d]
    return ColumnProfile(
        count=a.count + b.count,
        nulls=a.nulls + b.nulls,
        dtype="|".join(sorted(set(a.dtype.split("|")) | set(b.dtype.split("|")))),
        numeric=merge_numeric(a.numeric, b.numeric),
        values=values,
        other=other,
        shapes=shapes,
        unparsed=a.unparsed + b.unparsed,
        date_min=min(dates_min) if dates_min else None,
        date_max=max(dates_max) if dates_max else None,
    )


def _missing_column(n_rows: int, like: ColumnProfile) -> ColumnProfile:
    """A column absent from one side of a merge: all of that side's rows count as null."""
    return ColumnProfile(count=n_rows, nulls=n_rows, dtype=like.dtype)


def merge_pairs(a: PairProfile, b: PairProfile) -> PairProfile:
    stats = dict(a.stats)
    for key, value in b.stats.items():
        stats[key] = merge_numeric(stats.get(key), value)
    patients = {key: merge_patient_sums(a.patients.get(key), b.patients.get(key)) for key in a.patients | b.patients}
    return PairProfile(a.value, a.unit, a.code, _add(a.counts, b.counts), stats, patients)


def merge_segments(a: SegmentProfile, b: SegmentProfile) -> SegmentProfile:
    columns = {}
    for name in list(a.columns) + [n for n in b.columns if n not in a.columns]:
        left = a.columns.get(name) or _missing_column(a.n_rows, b.columns[name])
        right = b.columns.get(name) or _missing_column(b.n_rows, a.columns[name])
        columns[name] = merge_columns(left, right)
    pairs = {(p.value, p.unit, p.code): p for p in a.pairs}
    for pair in b.pairs:
        key = (pair.value, pair.unit, pair.code)
        pairs[key] = merge_pairs(pairs[key], pair) if key in pairs else pair
    rules = {k: list(v) for k, v in a.rules.items()}
    for key, (checked, violated) in b.rules.items():
        old = rules.get(key, [0, 0])
        rules[key] = [old[0] + checked, old[1] + violated]
    return SegmentProfile(a.n_rows + b.n_rows, columns, list(pairs.values()), np.maximum(a.hll, b.hll), rules)


def merge_profiles(a: Profile, b: Profile) -> Profile:
    segments = dict(a.segments)
    for key, part in b.segments.items():
        segments[key] = merge_segments(segments[key], part) if key in segments else part
    return Profile(a.segment_column or b.segment_column, dict(sorted(segments.items())), a.n_batches + b.n_batches)


def merge_all(profiles: list[Profile]) -> Profile:
    """A window: the merge of its batch profiles."""
    out = profiles[0]
    for profile in profiles[1:]:
        out = merge_profiles(out, profile)
    return out


# ---- JSON ---------------------------------------------------------------------------------------------------------


def _numeric_to_dict(stats: NumericStats | None) -> dict | None:
    if stats is None:
        return None
    return {**stats.__dict__, "sketch": sorted([k, v] for k, v in stats.sketch.items())}


def _numeric_from_dict(data: dict | None) -> NumericStats | None:
    if data is None:
        return None
    return NumericStats(**{**data, "sketch": {int(k): int(v) for k, v in data["sketch"]}})


def _segment_to_dict(segment: SegmentProfile) -> dict:
    return {
        "n_rows": segment.n_rows,
        "columns": {
            name: {**col.__dict__, "numeric": _numeric_to_dict(col.numeric), **_sorted_counts(col)}
            for name, col in segment.columns.items()
        },
        "pairs": [
            {
                "value": p.value,
                "unit": p.unit,
                "code": p.code,
                "counts": sorted([c, u, n] for (c, u), n in p.counts.items()),
                "stats": [[c, u, _numeric_to_dict(p.stats[(c, u)])] for c, u in sorted(p.stats)],
                "patients": [
                    [c, u, [[h, *p.patients[(c, u)][h]] for h in sorted(p.patients[(c, u)])]]
                    for c, u in sorted(p.patients)
                ],
            }
            for p in segment.pairs
        ],
        "hll": base64.b64encode(segment.hll.tobytes()).decode("ascii"),
        "rules": segment.rules,
    }


def _sorted_counts(column: ColumnProfile) -> dict:
    """Counts in key order, so equal profiles serialise to equal JSON whatever order batches merged in."""
    return {k: dict(sorted(getattr(column, k).items())) for k in ("values", "shapes") if getattr(column, k)}


def _segment_from_dict(data: dict) -> SegmentProfile:
    columns = {
        name: ColumnProfile(**{**col, "numeric": _numeric_from_dict(col["numeric"])})
        for name, col in data["columns"].items()
    }
    pairs = [
        PairProfile(
            p["value"],
            p["unit"],
            p["code"],
            {(c, u): n for c, u, n in p["counts"]},
            {(c, u): _numeric_from_dict(s) for c, u, s in p["stats"]},
            {(c, u): {int(h): (int(n), float(t), float(q)) for h, n, t, q in rows} for c, u, rows in p["patients"]},
        )
        for p in data["pairs"]
    ]
    hll = np.frombuffer(base64.b64decode(data["hll"]), dtype=np.uint8).copy()
    return SegmentProfile(data["n_rows"], columns, pairs, hll, {k: list(v) for k, v in data["rules"].items()})
