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

import numpy as np
import pandas as pd

from monitors.lab import numeric_share, parse_results, unit_share

KINDS = ("numeric", "categorical", "code", "unit", "date", "text", "id")
# Roles a caller may give beside the kinds: what a column *is* in a feed, and the kind it is profiled as.
# A site also becomes a segment column, a patient the contract's patient column.
ROLE_KINDS = {"value": "numeric", "site": "categorical", "patient": "id", "time": "date"}

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
    reason: str = ""  # why inference chose `kind` (shown by `crosswalk monitor --explain-contract`)


@dataclass
class ValueUnitPair:
    """A numeric result, its unit, and the code (e.g. LOINC) the unit is conditional on."""

    value: str
    unit: str
    code: str
    evidence: str = ""  # how inference paired them, e.g. "code explains 93% of value variance"


@dataclass
class GivenRole:
    """A column's role stated rather than inferred (by an approved field mapping, or by an operator)."""

    role: str  # one of KINDS or of ROLE_KINDS
    reason: str = "given (overrides inference)"

    @property
    def kind(self) -> str:
        return ROLE_KINDS.get(self.role, self.role)


@dataclass
class Contract:
    columns: list[ColumnSpec]
    segment_columns: list[str] = field(default_factory=list)
    value_unit_pairs: list[ValueUnitPair] = field(default_factory=list)
    row_key_columns: list[str] = field(default_factory=list)  # unique per row; left out of duplicate detection
    feed: str = "default"
    # whose rows these are: per-analyte drift tests count patients, not rows, when it is known
    patient_column: str | None = None

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

    def explain(self) -> list[str]:
        """One line per column and per value/unit/code triple: what each is taken to be and why."""
        lines = [f"{c.name:<32} {c.kind:<12} {c.reason or 'set in the contract'}" for c in self.columns]
        lines += [
            f"value {p.value} / unit {p.unit} / code {p.code}: {p.evidence or 'set in the contract'}"
            for p in self.value_unit_pairs
        ]
        if self.segment_columns:
            lines.append(f"segments: {', '.join(self.segment_columns)}")
        if self.row_key_columns:
            lines.append(f"row keys (left out of duplicate detection): {', '.join(self.row_key_columns)}")
        if self.patient_column:
            lines.append(f"patients: {self.patient_column} (per-analyte drift is tested per patient)")
        return lines

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
            patient_column=data.get("patient_column"),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise ContractError(f"{path}: not JSON ({error})") from None


# ---- inference: roles from content ---------------------------------------------------------------------------------

ID_WORDS = re.compile(
    r"(^id$|_id$|^subject$|mrn"
    r"|(patient|person|encounter|admission|hadm|visit|accession|specimen|subject)_?(id|no|nr|num|number|key)?$)",
    re.I,
)
# an identifier-shaped name that still names a code ("itemid", "test_id", "lab_item_no")
CODE_WORDS = re.compile(r"(item|test|analyte|assay|loinc|component|observation|obs_|lab_?code|order_?code)", re.I)
CODE_ENDINGS = ("id", "no", "nr", "num", "number", "code", "item", "key", "cd")
NUMERIC_SHARE = 0.6  # a text column whose present values are at least this share numbers is a result
UNIT_SHARE = 0.8  # a text column whose rows are at least this share unit spellings is a unit column
CODE_REPEATS = 5  # rows per distinct value, at least, for an integer column to be a code
INFERENCE_ROWS = 20_000  # rows sampled for the pairing statistics
MIN_EXPLAINED = 0.3  # share of a result's (rank) variance a code must explain to pair with it
CONSTANT_PER_CODE = 0.999  # explained beyond this: a property of the code (a reference range), not a result
MIN_UNIT_PURITY = 0.8  # share of rows whose unit is their code's usual unit
MIN_VALUES_PER_CODE = 4  # distinct results per code (median over codes with 10+ rows) for a measured result


def infer_contract(
    frame: pd.DataFrame,
    feed: str = "default",
    segment_columns: list[str] | None = None,
    roles: dict[str, str | GivenRole] | None = None,
    pairs: list[ValueUnitPair] | None = None,
) -> Contract:
    """Guess each column's role from its values (and, as hints, its name); pair results with units and codes by
    how the values depend on the code. Deterministic; edit the result where it guesses wrong.

    `roles`: column -> a kind or a role (`value`, `site`, `patient`, `time`) that win over inference, e.g. from
    approved field mappings or an operator; `pairs`: value/unit/code triples known the same way. Given
    `segment_columns` come first. An explicit contract file wins over all of this: it is never re-inferred."""
    given = {name: role if isinstance(role, GivenRole) else GivenRole(role) for name, role in (roles or {}).items()}
    unknown = {name: r.role for name, r in given.items() if r.kind not in KINDS}
    if unknown:
        raise ContractError(f"column roles: unknown kind(s) {unknown}; expected one of {(*KINDS, *ROLE_KINDS)}")
    given = {name: r for name, r in given.items() if name in frame.columns}
    sites = [name for name, r in given.items() if r.role == "site"]
    inferred = [c for c in frame.columns if _is_segment(c) and given.get(c, GivenRole("site")).role == "site"]
    segments = list(dict.fromkeys([*(segment_columns if segment_columns is not None else []), *sites]))
    if segment_columns is None:
        segments += [c for c in inferred if c not in segments]
    columns = []
    for name in frame.columns:
        spec = _infer_column(frame[name], name, name in segments)
        if name in given:
            spec.kind, spec.reason = given[name].kind, given[name].reason
        columns.append(spec)
    contract = Contract(columns=columns, segment_columns=segments, feed=feed)
    known = [p for p in pairs or [] if {p.value, p.unit, p.code} <= set(frame.columns)]
    taken = {p.value for p in known}
    found = [p for p in _infer_pairs(frame, contract, fixed=set(given)) if p.value not in taken]
    contract.value_unit_pairs = known + found
    n = len(frame)
    contract.row_key_columns = [
        c.name for c in columns if c.kind == "id" and n > 0 and frame[c.name].nunique(dropna=True) == n
    ]
    patients = [name for name, r in given.items() if r.role == "patient"]
    contract.patient_column = patients[0] if patients else _patient_column(contract)
    return contract


PATIENT_NAME = re.compile(r"^(patient|person|subject|pat|client|member)_?(id|no|nr|num|number|key|mrn)?$|mrn", re.I)


def _patient_column(contract: Contract) -> str | None:
    """The identifier column named like a patient's (person_id, subject_id, pat_mrn, PatientNo); not a row key."""
    candidates = [
        c.name
        for c in contract.columns
        if c.kind == "id" and c.name not in contract.row_key_columns and PATIENT_NAME.search(c.name)
    ]
    return candidates[0] if candidates else None


def _is_segment(name: str) -> bool:
    return name.lower() in SEGMENT_NAMES


def _spec(series: pd.Series, name: str, kind: str, reason: str) -> ColumnSpec:
    return ColumnSpec(
        name=name, kind=kind, dtype=str(series.dtype), null_rate=float(series.isna().mean()), reason=reason
    )


def _infer_column(series: pd.Series, name: str, is_segment: bool) -> ColumnSpec:
    lowered = name.lower()
    non_null = series.dropna()
    if is_segment:
        return _spec(series, name, "categorical", "segment column")
    if lowered.endswith("concept_id") and pd.api.types.is_numeric_dtype(series):
        return _spec(series, name, "categorical", "OMOP concept id: a category, not a quantity")
    if ID_WORDS.search(lowered) and not CODE_WORDS.search(lowered):
        return _spec(series, name, "id", "named like an identifier")
    if pd.api.types.is_datetime64_any_dtype(series) or (
        (DATE_NAME.search(lowered) or _date_shaped(non_null)) and _parses_as_dates(non_null)
    ):
        spec = _spec(series, name, "date", "parses as dates")
        spec.date_format = _date_format(non_null)
        return spec
    if pd.api.types.is_bool_dtype(series):
        return _spec(series, name, "categorical", "true/false")
    if pd.api.types.is_numeric_dtype(series):
        numbers = non_null.to_numpy(dtype=np.float64)
        reason = _integer_code_reason(numbers, lowered)
        if reason:
            return _spec(series, name, "code", reason)
        if ID_WORDS.search(lowered):
            return _spec(series, name, "id", "named like an identifier")
        if _unique_integers(numbers):
            return _spec(series, name, "id", "integers unique per row: a row identifier")
        return _spec(series, name, "numeric", "numbers")
    return _infer_text_column(series, non_null, name, lowered)


def _infer_text_column(series: pd.Series, non_null: pd.Series, name: str, lowered: str) -> ColumnSpec:
    sample = _sample(non_null)
    if _looks_like_codes(non_null, lowered):
        return _spec(series, name, "code", "named like a code column or shaped like codes (LOINC, ICD, SNOMED)")
    counts = sample.value_counts().to_dict()
    units = unit_share(counts)
    if units >= UNIT_SHARE:
        return _spec(series, name, "unit", f"{units:.0%} of values are unit spellings (e.g. {_top(counts)})")
    share = numeric_share(sample)
    if share >= NUMERIC_SHARE:
        numbers, _ = parse_results(sample)
        reason = _integer_code_reason(numbers[np.isfinite(numbers)], lowered) if share == 1.0 else None
        if reason and not sample.str.contains(r"[.<>,]", regex=True).any():
            return _spec(series, name, "code", reason + " (written as text)")
        return _spec(
            series,
            name,
            "numeric",
            f"{share:.0%} of values read as numbers once comparators, separators and ranges are parsed; "
            "the rest are tracked as categories",
        )
    if _looks_like_text(non_null) or (TEXT_NAME.search(lowered) and non_null.dtype == object):
        return _spec(series, name, "text", "long, mostly distinct strings")
    return _spec(series, name, "categorical", "a small set of repeated strings")


def _top(counts: dict) -> str:
    return ", ".join(str(k) for k in sorted(counts, key=counts.get, reverse=True)[:3])


def _integer_code_reason(numbers: np.ndarray, lowered: str) -> str | None:
    """Integers that behave like codes: few distinct values each repeated over many rows, and either a code-like
    name (itemid, test_no, lab_code) or one fixed number of digits (50912, 51221, ...)."""
    if numbers.size == 0 or not np.all(np.mod(numbers, 1) == 0):
        return None
    distinct = np.unique(numbers)
    repeats = numbers.size / distinct.size
    if distinct.size < 2 or repeats < CODE_REPEATS:
        return None
    digits = {len(str(int(abs(v)))) for v in distinct[:1000]}
    if lowered.endswith(CODE_ENDINGS) or CODE_WORDS.search(lowered):
        return f"integers named like codes, {distinct.size} distinct values over {numbers.size} rows"
    if len(digits) == 1 and digits.pop() >= 4:
        return f"integers of one fixed length, {distinct.size} distinct values over {numbers.size} rows"
    return None


DATE_SHAPE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4})([ T]\d.*)?$")


def _date_shaped(values: pd.Series) -> bool:
    """Dates whatever the column is called: 2013-05-17, 05/17/2013, 17.05.2013 (with or without a time)."""
    return bool(len(values)) and values.dtype == object and _sample(values).str.match(DATE_SHAPE).mean() > 0.95


def _unique_integers(numbers: np.ndarray) -> bool:
    return numbers.size >= 50 and np.all(np.mod(numbers, 1) == 0) and np.unique(numbers).size == numbers.size


def _sample(values: pd.Series, n: int = 2000) -> pd.Series:
    return values.iloc[:: max(1, len(values) // n)].astype(str)


def _parses_as_dates(values: pd.Series) -> bool:
    if values.empty:
        return False
    # utc=True: values with different offsets (HL7 times carry the sender's) parse too, without pandas' warning
    parsed = pd.to_datetime(_sample(values), errors="coerce", format="mixed", utc=True)
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


# ---- inference: value / unit / code triples ------------------------------------------------------------------------


def _infer_pairs(frame: pd.DataFrame, contract: Contract, fixed: set[str] = frozenset()) -> list[ValueUnitPair]:
    """For each result column, the code that explains most of its (rank) variance and the unit column that
    follows that code; one result per (code, unit): a native number column first, then the one with most numbers.
    A grouping column that explains a result is a code even when its values did not look like one."""
    if frame.empty:
        return []
    sample = frame.iloc[:: max(1, len(frame) // INFERENCE_ROWS)]
    results = [c.name for c in contract.columns if c.kind == "numeric"]
    groupings = [c for c in contract.columns if _may_group(c, sample[c.name])]
    units = contract.names("unit")
    chosen: dict[tuple[str, str], tuple[tuple, ValueUnitPair]] = {}
    for value in results:
        numbers, _ = parse_results(sample[value])
        best = _best_code(numbers, groupings, sample)
        if best is None:
            continue
        code, explained = best
        if _values_per_code(numbers, sample[code.name]) < MIN_VALUES_PER_CODE:
            continue  # a reference range or a limit: fixed per code, not a measured result
        unit = _best_unit(sample, code, units, numbers)
        if unit is None:
            continue
        unit_name, purity = unit
        found = int(np.isfinite(numbers).sum())
        rank = (pd.api.types.is_numeric_dtype(sample[value]), found, explained)
        evidence = (
            f"{code.name} explains {explained:.0%} of {value}'s rank variance; "
            f"{purity:.0%} of rows carry their code's usual {unit_name}"
        )
        pair = ValueUnitPair(value=value, unit=unit_name, code=code.name, evidence=evidence)
        key = (code.name, unit_name)
        if key not in chosen or rank > chosen[key][0]:
            chosen[key] = (rank, pair)
    pairs = [pair for _, pair in chosen.values()]
    for pair in pairs:
        code = contract.column(pair.code)
        if code.kind != "code" and pair.code not in fixed:
            code.kind, code.reason = "code", f"{pair.value}'s values depend on it (a code of lab tests)"
    return pairs


def _may_group(spec: ColumnSpec, values: pd.Series) -> bool:
    """Codes, categories, and integer numeric columns with few repeated values could be the code of a result."""
    if spec.kind in ("code", "categorical"):
        return True
    if spec.kind != "numeric" or not pd.api.types.is_integer_dtype(values):
        return False
    distinct = values.nunique()
    return 2 <= distinct and len(values) / distinct >= CODE_REPEATS


def _best_code(numbers: np.ndarray, groupings: list[ColumnSpec], sample: pd.DataFrame):
    scored = []
    present = np.isfinite(numbers)
    if present.sum() < 10:
        return None
    ranks = pd.Series(numbers[present]).rank().to_numpy()
    for spec in groupings:
        groups = sample[spec.name].astype("string").fillna("").to_numpy(dtype=object)[present]
        explained = _explained_variance(ranks, groups)
        if MIN_EXPLAINED <= explained < CONSTANT_PER_CODE:
            scored.append(((spec.kind == "code", explained), spec, explained))
    if not scored:
        return None
    _, spec, explained = max(scored, key=lambda s: s[0])
    return spec, explained


def _values_per_code(numbers: np.ndarray, codes: pd.Series) -> float:
    table = pd.DataFrame({"code": codes.astype("string").to_numpy(dtype=object), "value": numbers}).dropna()
    grouped = table.groupby("code")["value"]
    distinct = grouped.nunique()[grouped.size() >= 10]
    return float(distinct.median()) if len(distinct) else 0.0


def _explained_variance(values: np.ndarray, groups: np.ndarray) -> float:
    """Adjusted eta squared: the share of variance the groups explain, corrected for the number of groups
    (so that a near-unique column does not 'explain' everything by having one row per group)."""
    n = values.size
    frame = pd.DataFrame({"g": groups, "v": values})
    stats = frame.groupby("g", sort=False)["v"].agg(["count", "mean"])
    k = len(stats)
    if k < 2 or n - k < 2:
        return 0.0
    total = float(((values - values.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    between = float((stats["count"] * (stats["mean"] - values.mean()) ** 2).sum())
    within = total - between
    return float(1 - (within / (n - k)) / (total / (n - 1)))


def _best_unit(sample: pd.DataFrame, code: ColumnSpec, units: list[str], numbers: np.ndarray):
    """The unit column that each code mostly keeps to one value of (among rows with a result)."""
    best = None
    rows = np.isfinite(numbers)
    for unit in units:
        table = pd.DataFrame(
            {
                "code": sample[code.name].astype("string").fillna("").to_numpy(dtype=object)[rows],
                "unit": sample[unit].astype("string").fillna("").to_numpy(dtype=object)[rows],
            }
        )
        if table.empty:
            continue
        purity = float(table.groupby(["code", "unit"]).size().groupby(level=0).max().sum() / len(table))
        if purity >= MIN_UNIT_PURITY and (best is None or purity > best[1]):
            best = (unit, purity)
    return best
