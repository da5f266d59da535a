"""Profiles: merge is associative and equals profiling the concatenation; sketches are accurate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors import profile as profile_module
from monitors.profile import (
    ALL,
    MIGRATIONS,
    PROFILE_SCHEMA,
    NumericStats,
    Profile,
    ProfileSchemaError,
    hll_estimate,
    hll_registers,
    merge_all,
    merge_profiles,
    profile_frame,
)
from monitors.rules import PlausibilityRules


def _comparable(profile: Profile) -> dict:
    """The profile as plain data with floats rounded: Chan's moment merge is exact up to float rounding."""

    def walk(value):
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    data = profile.to_dict()
    data.pop("n_batches")
    return walk(data)


@pytest.fixture
def thirds(measurements, contract):
    parts = [measurements.iloc[i : i + 540] for i in range(0, len(measurements), 540)]
    return [profile_frame(p, contract, rules=PlausibilityRules()) for p in parts]


def test_merge_is_associative(thirds):
    a, b, c = thirds
    left = merge_profiles(merge_profiles(a, b), c)
    right = merge_profiles(a, merge_profiles(b, c))
    assert _comparable(left) == _comparable(right)
    assert left.n_batches == right.n_batches == 3


def test_window_equals_profile_of_all_rows(thirds, measurements, contract):
    whole = profile_frame(measurements, contract, rules=PlausibilityRules())
    assert _comparable(merge_all(thirds)) == _comparable(whole)


def test_profile_contents(measurements, contract):
    profile = profile_frame(measurements, contract)
    assert sorted(profile.segments) == ["north", "south"] and profile.n_rows == 1600
    overall = profile.segment(ALL)
    values = overall.columns["value_as_number"]
    assert values.nulls == measurements["value_as_number"].isna().sum()
    assert values.numeric.mean == pytest.approx(measurements["value_as_number"].mean())
    assert overall.columns["measurement_source_value"].values["8480-6"] == 116
    pair = overall.pairs[0]
    assert pair.units("8480-6") == {"mm[Hg]": 116}
    assert pair.stats[("8480-6", "mm[Hg]")].n == 116


def test_json_round_trip(measurements, contract):
    profile = profile_frame(measurements, contract, rules=PlausibilityRules())
    again = Profile.from_dict(profile.to_dict())
    assert _comparable(again) == _comparable(profile)


def test_stored_profiles_carry_their_schema_and_older_ones_still_read(measurements, contract):
    data = profile_frame(measurements, contract).to_dict()
    assert data["schema"] == PROFILE_SCHEMA
    unversioned = {k: v for k, v in data.items() if k != "schema"}  # saved before versions were recorded
    assert _comparable(Profile.from_dict(unversioned)) == _comparable(Profile.from_dict(data))


@pytest.mark.parametrize("schema", [PROFILE_SCHEMA + 1, 0, "2"])
def test_a_newer_or_unknown_profile_schema_is_refused_clearly(measurements, contract, schema):
    data = {**profile_frame(measurements, contract).to_dict(), "schema": schema}
    with pytest.raises(ProfileSchemaError, match="newer than this crosswalk reads|unknown profile schema"):
        Profile.from_dict(data)


def test_an_older_profile_schema_is_migrated(measurements, contract, monkeypatch):
    """A future shape change bumps PROFILE_SCHEMA and adds a step: stored profiles of the old shape are lifted."""
    data = profile_frame(measurements, contract).to_dict()
    monkeypatch.setattr(profile_module, "PROFILE_SCHEMA", PROFILE_SCHEMA + 1)
    monkeypatch.setitem(MIGRATIONS, PROFILE_SCHEMA, lambda old: {**old, "n_batches": 7})
    assert Profile.from_dict(data).n_batches == 7


def test_sketch_quantiles_within_one_percent():
    values = np.random.default_rng(1).lognormal(3, 1, 50_000)
    stats = NumericStats.of(values)
    for q in (0.05, 0.5, 0.95):
        assert stats.quantile(q) == pytest.approx(np.quantile(values, q), rel=0.025)
    assert stats.n == 50_000 and stats.std == pytest.approx(values.std(ddof=1))


def test_duplicate_sketch_counts_distinct_rows():
    frame = pd.DataFrame({"a": np.arange(20_000), "b": np.arange(20_000) % 7})
    doubled = pd.concat([frame, frame.iloc[:4000]])
    hashes = pd.util.hash_pandas_object(doubled, index=False).to_numpy()
    assert hll_estimate(hll_registers(hashes)) == pytest.approx(20_000, rel=0.01)


def test_segment_absent_from_a_column_counts_as_null(measurements, contract):
    a = profile_frame(measurements.iloc[:800], contract)
    b = profile_frame(measurements.iloc[800:].drop(columns=["unit_source_value"]), contract)
    merged = merge_profiles(a, b).segment(ALL).columns["unit_source_value"]
    assert merged.count == 1600 and merged.nulls >= 800
