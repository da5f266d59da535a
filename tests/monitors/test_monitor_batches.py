"""Reading batches: CSV, Parquet, FHIR NDJSON; one clear line for each bad batch."""

from __future__ import annotations

import pytest

from monitors.batches import BatchError, read_batch
from tests.monitors.conftest import MONITORING


def test_csv_and_parquet_read_the_same_rows(tmp_path, measurements):
    path = tmp_path / "batch.parquet"
    measurements.to_parquet(path)
    frame = read_batch(path)
    assert len(frame) == len(read_batch(MONITORING / "measurements.csv")) == 1600
    assert list(frame.columns) == list(measurements.columns)


def test_fhir_ndjson_flattens_observations_conditions_and_medications():
    frame = read_batch(MONITORING / "fhir_resources.ndjson")
    assert list(frame["resource_type"].value_counts().sort_index().items()) == [
        ("Condition", 1),
        ("MedicationRequest", 1),
        ("Observation", 12),
    ]  # the Patient line is skipped
    obs = frame[frame.resource_type == "Observation"].iloc[0]
    assert obs["code_system"] == "http://loinc.org" and obs["unit"] and obs["value"] > 0
    assert obs["site"].startswith("urn:site:") and obs["subject"].startswith("Patient/")
    assert frame.loc[frame.resource_type == "Condition", "onset"].item() == "2015-03-02"
    assert frame.loc[frame.resource_type == "MedicationRequest", "code"].item() == "860975"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", "", "empty batch"),
        ("header.csv", "a,b\n", "empty batch"),
        (
            "broken.ndjson",
            '{"resourceType": "Observation", "code": {"coding": [{"code": "1-8"}]}}\n{"oops\n',
            "broken.ndjson line 2: invalid JSON",
        ),
        ("nocode.ndjson", '{"resourceType": "Condition", "id": "x"}\n', "nocode.ndjson line 1: Condition without code"),
        ("plain.ndjson", "[1, 2]\n", "line 1: not a FHIR resource"),
        ("bad.parquet", "not parquet at all", "not readable as Parquet"),
    ],
)
def test_bad_batches_raise_one_clear_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BatchError) as error:
        read_batch(path)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert name in str(error.value)


def test_wrong_columns_for_the_contract(tmp_path, contract):
    path = tmp_path / "other.csv"
    path.write_text("x,y,z\n1,2,3\n")
    with pytest.raises(BatchError, match=r"other.csv: wrong columns for feed 'labs': 0 of \d+ expected"):
        read_batch(path, contract)


def test_a_few_missing_columns_are_not_a_batch_error(tmp_path, measurements, contract):
    path = tmp_path / "fewer.csv"
    measurements.drop(columns=["measurement_concept_id"]).to_csv(path, index=False)
    assert "measurement_concept_id" not in read_batch(path, contract).columns  # a schema finding, later


def test_missing_file(tmp_path):
    with pytest.raises(BatchError, match="no such file"):
        read_batch(tmp_path / "nope.csv")
