"""Fixtures for the monitors tests: the Synthea measurement sample split into reference and current."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors.contract import infer_contract
from tests.conftest import SAMPLES

MONITORING = SAMPLES / "monitoring"


@pytest.fixture(scope="session")
def measurements() -> pd.DataFrame:
    return pd.read_csv(MONITORING / "measurements.csv")


@pytest.fixture(scope="session")
def halves(measurements) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random (not time) split: the two halves come from one distribution, so a clean run must be quiet."""
    order = np.random.default_rng(0).permutation(len(measurements))
    half = len(order) // 2
    return (
        measurements.iloc[order[:half]].reset_index(drop=True),
        measurements.iloc[order[half:]].reset_index(drop=True),
    )


@pytest.fixture
def reference(halves) -> pd.DataFrame:
    return halves[0].copy()


@pytest.fixture
def current(halves) -> pd.DataFrame:
    return halves[1].copy()


@pytest.fixture(scope="session")
def contract(halves):
    return infer_contract(halves[0], feed="labs")


def keys(report) -> set[tuple[str, str, str]]:
    """(check, column, segment) of every alert."""
    return {(a.check, a.column, a.segment) for a in report.alerts}
