"""Lab results and units as laboratories write them: result strings read as numbers, unit spellings recognised.

A result column is often text: `"4.2"`, `"<0.5"`, `">200"`, `"1,234"`, `"2-4"`, `"NEG"`. `parse_results` reads
the numbers (a censored value as its bound, a range as its midpoint) and marks the rest as non-numeric, which
the profile then counts as categories of their own.

Units come from a small table of the spellings labs use (UCUM and the common non-UCUM ones: K/uL, mEq/L,
mmHg, mcg/dL ...), each with its canonical UCUM form and its LOINC PROPERTY (mass vs substance concentration
and so on). A table, not a UCUM library (pint, ucumvert): UCUM parsers read lab spellings wrongly or not at
all (to UCUM, K/uL is kelvin per microlitre and mEq/L is not valid case-sensitive UCUM), and recognition, a
property and a handful of analyte-specific conversion factors is all the monitors need.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

# ---- result strings -----------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[-+]?\.\d+"
RESULT = re.compile(
    rf"^(?P<cmp><=|>=|<|>|≤|≥)?\s*(?P<a>{_NUMBER})(?:\s*(?:-|to)\s*(?P<b>{_NUMBER}))?\s*(?:[HLhl*]{{1,2}})?$"
)
DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d{1,2}$")  # "4,2" (a European decimal), not "1,234" (thousands)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_result(text: str) -> float:
    """One result string -> a number, or NaN when it is not one ("NEG", "see note", a code like "2345-7")."""
    text = text.strip()
    if DECIMAL_COMMA.match(text):
        return float(text.replace(",", "."))
    match = RESULT.match(text)
    if match is None:
        return math.nan
    a = _number(match["a"])
    if match["b"] is None:
        return a
    b = _number(match["b"])
    return (a + b) / 2 if a <= b and match["cmp"] is None else math.nan  # "2345-7" is a code, not a range


def parse_results(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, non_numeric): float64 values (NaN where missing or not a number) and a mask of the present
    values that are not numbers. Plain numbers take pandas' fast path; only the rest go through the regex,
    once per distinct string (a lab sends few distinct non-plain strings)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), dtype=bool)
    present = values.notna().to_numpy()
    # A copy: to_numpy may hand back pandas' own (read-only, under copy-on-write) buffer, filled in below.
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    failed = present & np.isnan(numbers)
    if failed.any():
        text = values[failed].astype(str)
        distinct = pd.unique(text.to_numpy())
        parsed = dict(zip(distinct, (parse_result(t) for t in distinct)))
        numbers[failed] = text.map(parsed).to_numpy(dtype=np.float64)
    return numbers, present & np.isnan(numbers)


def numeric_share(values: pd.Series) -> float:
    """Share of the present values that read as numbers."""
    numbers, non_numeric = parse_results(values)
    present = int((~np.isnan(numbers)).sum() + non_numeric.sum())
    return float((~np.isnan(numbers)).sum() / present) if present else 0.0


# ---- units --------------------------------------------------------------------------------------------------------

# canonical UCUM unit -> (LOINC PROPERTY, other spellings, lower-cased). "Fr" stands for any fraction (MFr, NFr,
# VFr): a bare % does not say which.
UNITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mg/dL": ("MCnc", ("mg/dl", "mg%", "mg/100ml")),
    "g/dL": ("MCnc", ("g/dl", "gm/dl", "g%")),
    "g/L": ("MCnc", ("g/l", "gm/l")),
    "mg/L": ("MCnc", ("mg/l",)),
    "ug/dL": ("MCnc", ("ug/dl", "mcg/dl", "µg/dl")),
    "ug/L": ("MCnc", ("ug/l", "mcg/l", "µg/l", "ng/ml")),
    "ug/mL": ("MCnc", ("ug/ml", "mcg/ml", "µg/ml")),
    "ng/dL": ("MCnc", ("ng/dl",)),
    "ng/L": ("MCnc", ("ng/l", "pg/ml")),
    "mmol/L": ("SCnc", ("mmol/l", "mm/l", "mmol")),
    "umol/L": ("SCnc", ("umol/l", "µmol/l", "micromol/l")),
    "nmol/L": ("SCnc", ("nmol/l",)),
    "pmol/L": ("SCnc", ("pmol/l",)),
    "meq/L": ("SCnc", ("meq/l", "mequiv/l", "meq")),
    "mosm/kg": ("Osmol", ("mosm/kg", "mosm/kg h2o")),
    "U/L": ("CCnc", ("u/l", "iu/l", "[iu]/l", "units/l")),
    "kU/L": ("CCnc", ("ku/l", "kiu/l", "k[iu]/l")),
    "m[IU]/mL": ("ACnc", ("miu/ml", "m[iu]/ml", "uiu/ml", "u[iu]/ml", "[iu]/ml", "iu/ml")),
    "10*3/uL": ("NCnc", ("10*3/ul", "10^3/ul", "x10e3/ul", "x10^3/ul", "k/ul", "thou/ul", "10*9/l", "10^9/l")),
    "10*6/uL": ("NCnc", ("10*6/ul", "10^6/ul", "x10e6/ul", "x10^6/ul", "m/ul", "mil/ul", "10*12/l", "10^12/l")),
    "/uL": ("NCnc", ("/ul", "cells/ul", "/mm3")),
    "/[HPF]": ("Naric", ("/[hpf]", "/hpf", "per hpf")),
    "/[LPF]": ("Naric", ("/[lpf]", "/lpf", "per lpf")),
    "%": ("Fr", ("%", "percent", "pct")),
    "fL": ("EntVol", ("fl", "um3")),
    "pg": ("EntMass", ("pg", "pg/cell")),
    "mm[Hg]": ("Pres", ("mm[hg]", "mmhg", "mm hg")),
    "kg": ("Mass", ("kg", "kgs")),
    "g": ("Mass", ("g", "gm", "grams")),
    "[lb_av]": ("Mass", ("[lb_av]", "lb", "lbs")),
    "cm": ("Len", ("cm",)),
    "[in_i]": ("Len", ("[in_i]", "in", "inch", "inches")),
    "kg/m2": ("Ratio", ("kg/m2", "kg/m^2")),
    "Cel": ("Temp", ("cel", "degc", "°c", "deg c", "c")),
    "[degF]": ("Temp", ("[degf]", "degf", "°f", "deg f", "f")),
    "/min": ("NRat", ("/min", "bpm", "beats/min", "breaths/min", "{beats}/min", "{breaths}/min")),
    "s": ("Time", ("s", "sec", "secs", "seconds")),
    "mL/min/{1.73_m2}": ("VRat", ("ml/min/{1.73_m2}", "ml/min/1.73m2", "ml/min/1.73 m2", "ml/min/1.73m^2")),
    "mL/min": ("VRat", ("ml/min",)),
    "mg/g": ("MRto", ("mg/g", "mg/g{creat}", "mg/g creat")),
    "{ratio}": ("Ratio", ("{ratio}", "ratio")),
    "{score}": ("Score", ("{score}", "score", "{t-score}", "t-score", "{z-score}")),
    "{nominal}": ("Nom", ("{nominal}",)),
    "[pH]": ("LsCnc", ("[ph]", "ph", "ph units")),
}
SPELLINGS: dict[str, str] = {}
for _canonical, (_property, _aliases) in UNITS.items():
    SPELLINGS[_canonical.lower()] = _canonical
    for _alias in _aliases:
        SPELLINGS[_alias] = _canonical
# Bare letters that are also sexes, flags or grades ("M", "F", "C") only count as units next to real units.
AMBIGUOUS = {"c", "f", "g", "s", "in", "meq", "mmol", "ratio", "score"}


# Other unit-shaped spellings (mass or amount per volume or time) count towards finding a unit column, though
# the table has no canonical form for them: mIU/L, mmol/mol, mg/24h, x10E9/L ...
UNIT_SHAPE = re.compile(
    r"^(10[*^]\d+|x?10e\d+|[munpfkµ]?(g|mol|eq|l|iu|\[iu\]|u|osm|kat|copies|cells))"
    r"/([munpfkdµ]?(l|g|mol|kg)|h|hr|min|24h|\d*\[?[hl]pf\]?|1\.73m2)$",
    re.I,
)


def is_unit_like(spelling: str) -> bool:
    text = " ".join(str(spelling).strip().lower().split())
    return text in SPELLINGS or bool(UNIT_SHAPE.match(text))


def canonical_unit(spelling: str) -> str | None:
    """'MG/DL' -> 'mg/dL', 'K/uL' -> '10*3/uL'; None for anything not a known unit spelling."""
    return SPELLINGS.get(" ".join(str(spelling).strip().lower().split()))


def unit_property(spelling: str) -> str | None:
    """The LOINC PROPERTY a unit implies ('mmol/L' -> 'SCnc'), or None when unknown."""
    canonical = canonical_unit(spelling)
    return UNITS[canonical][0] if canonical else None


def properties_agree(unit_prop: str, loinc_prop: str) -> bool:
    """'Fr' (a bare %) agrees with any fraction; otherwise the properties must be equal."""
    if unit_prop == "Fr":
        return loinc_prop.endswith("Fr")
    return unit_prop == loinc_prop


def unit_share(counts: dict[str, int]) -> float:
    """Share of rows whose value is a known unit spelling; ambiguous ones count only beside >= 2 clear units."""
    total = sum(counts.values())
    if not total:
        return 0.0
    clear = {v for v in counts if is_unit_like(v) and str(v).strip().lower() not in AMBIGUOUS}
    counted = sum(n for v, n in counts.items() if is_unit_like(v) and (v in clear or len(clear) >= 2))
    return counted / total


# ---- conversions ----------------------------------------------------------------------------------------------------

# (factor, from, to, analytes): value_in_to = value_in_from * factor. Analyte-specific molar masses; the
# analyte names go into messages ("glucose?"), they are a hint, the numbers decide.
CONVERSIONS: list[tuple[float, str, str, str]] = [
    (1 / 18.016, "mg/dL", "mmol/L", "glucose"),
    (88.4, "mg/dL", "umol/L", "creatinine"),
    (1 / 2.801, "mg/dL", "mmol/L", "urea nitrogen"),
    (1 / 4.008, "mg/dL", "mmol/L", "calcium"),
    (1 / 38.67, "mg/dL", "mmol/L", "cholesterol"),
    (1 / 88.57, "mg/dL", "mmol/L", "triglycerides"),
    (17.1, "mg/dL", "umol/L", "bilirubin"),
    (10.0, "g/dL", "g/L", "protein, albumin, hemoglobin"),
    (0.6206, "g/dL", "mmol/L", "hemoglobin"),
    (2.2046, "kg", "[lb_av]", "weight"),
    (1 / 2.54, "cm", "[in_i]", "height"),
    (1000.0, "g", "mg", "mass"),
]


def closest_conversion(ratio: float) -> tuple[float, str, str, str]:
    """The known conversion (factor, from, to, analytes), either way round, nearest `ratio` on a log scale."""
    options = []
    for factor, src, dst, analytes in CONVERSIONS:
        options.append((abs(math.log(ratio / factor)), factor, src, dst, analytes))
        options.append((abs(math.log(ratio * factor)), 1 / factor, dst, src, analytes))
    _, factor, src, dst, analytes = min(options)
    return factor, src, dst, analytes


def factor_text(factor: float) -> str:
    """x 88.4 or / 18.0: whichever reads as the number people quote."""
    return f"x {factor:.3g}" if factor >= 1 else f"/ {1 / factor:.3g}"
