"""Per-batch series for the ops drill-down: missingness and drift of one column, per segment, over time.

Read from the profiles the monitoring store keeps for the reference and every batch (no data is
re-read), with the monitors' own distances: Wasserstein / reference SD for numeric columns, PSI for
categorical and code columns, each batch segment against the same segment of the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlmodel import Session

from monitors.checks.base import CheckConfig, categorical_shift, numeric_shift
from monitors.contract import Contract
from monitors.profile import ALL, ColumnProfile, Profile, SegmentProfile
from service.monitoring import feeds as crud_feeds
from service.monitoring import files
from service.store.feeds import Feed

MAX_BATCHES = 30  # points on a plot; older batches are in the batch table


@dataclass
class ColumnHistory:
    column: str
    kind: str
    batches: list[int] = field(default_factory=list)
    missing: dict[str, list[float | None]] = field(default_factory=dict)  # segment -> null rate per batch
    drift: dict[str, list[float | None]] = field(default_factory=dict)  # segment -> distance per batch
    drift_label: str = ""
    drift_threshold: float | None = None
    reference_missing: float | None = None


@lru_cache(maxsize=256)
def _profile(home: Path, relative: str, sha256: str) -> Profile:
    """Kept profiles never change (their sha256 is in the audited row): cache them by that hash."""
    return files.read_profile(home, relative, sha256)


def plottable_columns(feed: Feed) -> list[str]:
    contract = Contract.from_dict(feed.contract)
    return contract.names("numeric", "categorical", "code", "unit")


def column_history(session: Session, home: Path, feed: Feed, column: str) -> ColumnHistory:
    contract = Contract.from_dict(feed.contract)
    spec = contract.column(column)
    kind = spec.kind if spec else "unknown"
    history = ColumnHistory(column, kind, **_drift_labels(kind))
    reference = _profile(home, feed.reference_profile, feed.reference_profile_sha256)
    overall_reference = reference.overall()
    reference_column = overall_reference.columns.get(column)
    history.reference_missing = reference_column.null_rate if reference_column else None
    batches = crud_feeds.list_batches(session, feed, 0, MAX_BATCHES)[::-1]  # oldest first
    for index, batch in enumerate(batches):
        history.batches.append(batch.number)
        profile = _profile(home, batch.profile_file, batch.profile_sha256)
        for key, segment in _segments(profile):
            before = (reference.segments.get(key) if key != ALL else overall_reference) or overall_reference
            _add_point(history, key, index, segment.columns.get(column), before.columns.get(column))
    return history


def _drift_labels(kind: str) -> dict:
    config = CheckConfig()
    if kind == "numeric":
        return {"drift_label": "Wasserstein distance / reference SD", "drift_threshold": config.numeric_drift}
    return {"drift_label": "population stability index (PSI)", "drift_threshold": config.categorical_psi}


def _segments(profile: Profile) -> list[tuple[str, SegmentProfile]]:
    """The whole batch first ('*' = all rows), then each segment when the feed is segmented."""
    parts = [(ALL, profile.overall())]
    if profile.segment_column:
        parts += sorted(profile.segments.items())
    return parts


def _add_point(
    history: ColumnHistory, key: str, index: int, now: ColumnProfile | None, before: ColumnProfile | None
) -> None:
    for series in (history.missing, history.drift):
        values = series.setdefault(key, [])
        values.extend([None] * (index - len(values)))  # a segment absent from earlier batches
    history.missing[key].append(now.null_rate if now else None)
    history.drift[key].append(_distance(history.kind, before, now))


def _distance(kind: str, before: ColumnProfile | None, now: ColumnProfile | None) -> float | None:
    if before is None or now is None:
        return None
    if kind == "numeric" and before.numeric and now.numeric:
        return numeric_shift(before.numeric, now.numeric)[0]
    if before.values and now.values:
        return categorical_shift(before.values, now.values)[0]
    return None
