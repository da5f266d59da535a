"""`score_batch`: reference + current batch -> MonitorReport, JSON-ready; and an optional Evidently HTML
report of the batch for drill-down.

A report's `alerts` (one per feed, segment, check and column) are what a person acts on and what the
service stores, lists and sends (`monitors.alerts.process_batch`); its `findings` are the evidence
behind them (every test that passed the effect floors and BH, several per alert)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from monitors.alerts import Alert, alerts_from_findings, now_iso
from monitors.checks import CheckConfig, Finding, finalise, run_checks
from monitors.checks.base import severity_rank
from monitors.contract import Contract, infer_contract
from monitors.profile import ALL, Profile, profile_frame
from monitors.rules import PlausibilityRules

ALERT_FIELDS = ("check", "column", "segment", "severity", "statistic", "threshold", "message")


@dataclass
class MonitorReport:
    feed: str
    batch_id: str
    rows_reference: int
    rows_current: int
    segment_column: str | None
    segments: list[str]
    findings: list[Finding]  # the evidence: every kept test
    alerts: list[Alert]  # what is reported and stored: one per key, its worst finding speaking
    tests: int  # statistical and rule tests run before effect floors and BH
    seconds: dict[str, float] = field(default_factory=dict)
    scored_segments: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {
            "feed": self.feed,
            "batch_id": self.batch_id,
            "rows": {"reference": self.rows_reference, "current": self.rows_current},
            "segment_column": self.segment_column,
            "segments": self.segments,
            "tests": self.tests,
            "alerts": [{k: getattr(a, k) for k in ALERT_FIELDS} | {"details": a.details} for a in self.alerts],
            "summary": summarise(self.alerts),
            "seconds": self.seconds,
        }

    def findings_dicts(self) -> list[dict]:
        return [asdict(f) for f in self.findings]


def summarise(alerts: list[Alert]) -> dict[str, int]:
    out = {"critical": 0, "warning": 0, "info": 0}
    for alert in alerts:
        out[alert.severity] += 1
    return out


def score_batch(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Profile,
    contract: Contract | None = None,
    *,
    segment: str | None = None,
    feed: str | None = None,
    batch_id: str = "",
    approved=None,
    rules: PlausibilityRules | None = None,
    encoder=None,
    history: list[Profile] | None = None,
    config: CheckConfig | None = None,
) -> MonitorReport:
    """Profile what is not yet a profile, run every check, keep what passes floors + BH, one alert per key.

    `approved`: codes with an approved mapping (a set, a callable code -> bool, or {column: either}), e.g. from
    the mapping store when present; without it, never-seen codes are reported instead.
    `rules`: plausibility rules (default: PlausibilityRules()); `history`: past batch profiles for the
    batch-level anomaly check; `encoder`: texts -> vectors for embedding drift of text columns.
    """
    started = time.perf_counter()
    if contract is None:
        if not isinstance(reference, pd.DataFrame):
            raise ValueError("a contract is needed when the reference is a profile")
        contract = infer_contract(reference, feed=feed or "default")
    rules = PlausibilityRules() if rules is None else rules
    segment = segment or (contract.segment_columns[0] if contract.segment_columns else None)
    ref = _as_profile(reference, contract, segment, rules)
    cur = _as_profile(current, contract, segment, rules)
    profiled = time.perf_counter()
    report = score_profiles(
        ref,
        cur,
        contract,
        feed=feed,
        batch_id=batch_id,
        approved=approved,
        encoder=encoder,
        history=history,
        config=config,
    )
    report.seconds = {"profile": profiled - started, "score": time.perf_counter() - profiled}
    return report


def _as_profile(data: pd.DataFrame | Profile, contract: Contract, segment: str | None, rules) -> Profile:
    return data if isinstance(data, Profile) else profile_frame(data, contract, segment, rules)


def score_profiles(
    reference: Profile,
    current: Profile,
    contract: Contract,
    *,
    feed: str | None = None,
    batch_id: str = "",
    approved=None,
    encoder=None,
    history: list[Profile] | None = None,
    config: CheckConfig | None = None,
) -> MonitorReport:
    config = config or CheckConfig()
    feed = feed or contract.feed
    tested = run_checks(reference, current, contract, config, approved=approved, encoder=encoder, history=history)
    kept = finalise(tested, config, contract)
    kept.sort(key=lambda f: (-severity_rank(f.severity), f.segment, f.check, f.column))
    alerts = alerts_from_findings(kept, feed, batch_id, now_iso())
    return MonitorReport(
        feed=feed,
        batch_id=batch_id,
        rows_reference=reference.n_rows,
        rows_current=current.n_rows,
        segment_column=current.segment_column,
        segments=sorted(current.segments) if current.segment_column else [ALL],
        findings=kept,
        alerts=alerts,
        tests=len(tested),
        scored_segments=scored_segments(current, config),
    )


def scored_segments(profile: Profile, config: CheckConfig) -> set[str]:
    """Segments with enough rows that a clean result there may resolve an open alert."""
    return {ALL} | {k for k, s in profile.segments.items() if s.n_rows >= config.min_rows}


# ---- Evidently drill-down ---------------------------------------------------------------------------------------


def evidently_html(reference: pd.DataFrame, current: pd.DataFrame, path: str | Path, contract: Contract) -> Path:
    """Evidently's DataDriftPreset on the columns worth a per-column look (no ids, dates or free text)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in contract.names("numeric", "categorical", "code", "unit") if c in current.columns]
    columns = [c for c in columns if reference[c].notna().any() and current[c].notna().any()]
    snapshot = Report([DataDriftPreset(columns=columns)]).run(
        reference_data=_evidently_frame(reference[columns], contract),
        current_data=_evidently_frame(current[columns], contract),
    )
    path = Path(path)
    snapshot.save_html(str(path))
    return path


def _evidently_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Evidently infers column types from dtypes: codes stored as numbers must be strings to be categories."""
    out = frame.copy()
    for name in out.columns:
        spec = contract.column(name)
        if spec is not None and spec.kind != "numeric":
            out[name] = out[name].astype("string").astype(object)
    return out
