"""Reading source schemas: schema CSVs, data files with value profiles, databases and HL7 v2 messages."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from ingest.schema import (
    MAX_COLUMNS,
    SchemaError,
    hl7_field_names,
    profile_values,
    read_data_files,
    read_database,
    read_hl7_messages,
    read_schema_csv,
    read_source,
    redact_url,
)
from tests.conftest import SHARED_DATA


def test_schema_csv_with_aliases_and_only_table_and_column(tmp_path):
    path = tmp_path / "schema.csv"
    path.write_text("Table_Name,Column_Name,Description\nlabevents,valueuom,Unit of measure\nlabevents,itemid,NA\n")
    schema = read_schema_csv(path)
    assert [c.key for c in schema.columns] == ["labevents.valueuom", "labevents.itemid"]
    assert schema.columns[0].description == "Unit of measure"
    assert schema.columns[1].description == ""  # NA placeholders are empty, not the word "NA"


def test_schema_csv_lists_a_repeated_column_once(tmp_path):
    path = tmp_path / "schema.csv"
    path.write_text("table,column,description,target_table\nlab,uom,Unit,measurement\nlab,uom,,observation\n")
    [column] = read_schema_csv(path).columns
    assert column.description == "Unit"


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("name,kind\na,b\n", "lacks table and column"),
        ("table,column\n", "no columns below the header"),
        ("table,column\npatients,\n", ":2: table and column must both be filled in"),
    ],
)
def test_bad_schema_csv_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SchemaError, match=message) as error:
        read_schema_csv(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    with pytest.raises(SchemaError, match="binary"):
        read_source(str(path))


def test_profiles_dates_units_codes_and_numbers():
    assert profile_values(["2101-10-20", "2101-10-21", None]).kind == "date"
    assert profile_values(["2101-10-20 10:00:00", "2101-10-21 11:30:00"]).kind == "datetime"
    units = profile_values(["mg/dL", "mmol/L", "mg/dL", "%"])
    assert "unit" in units.patterns
    assert "loinc" in profile_values(["2345-7", "718-7", "4548-4"]).patterns
    assert "icd10" in profile_values(["E11.9", "I10", "J18.9"]).patterns
    numbers = profile_values(["1.5", "7.25", "", "3"])
    assert numbers.kind == "number" and (numbers.minimum, numbers.maximum) == (1.5, 7.25)
    assert numbers.missing_share == pytest.approx(0.25)
    assert "e.g." in numbers.describe()


def test_data_folder_gives_one_table_per_file_with_profiles(tmp_path):
    pd.DataFrame({"subject_id": [1, 2], "charttime": ["2101-01-01 10:00", "2101-01-02 11:00"]}).to_csv(
        tmp_path / "labevents.csv", index=False
    )
    pd.DataFrame({"gender": ["F", "M"], "dob": ["2050-01-01", "2060-02-02"]}).to_parquet(tmp_path / "patients.parquet")
    schema = read_source(str(tmp_path))
    assert {c.key for c in schema.columns} == {
        "labevents.subject_id",
        "labevents.charttime",
        "patients.gender",
        "patients.dob",
    }
    profiles = {c.key: c.profile for c in schema.columns}
    assert profiles["labevents.charttime"].kind == "datetime"
    assert profiles["patients.dob"].kind == "date"
    assert profiles["labevents.subject_id"].kind == "integer"


def test_csv_without_header_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2023-01-01,7.5\n2,2023-01-02,8.1\n")
    with pytest.raises(SchemaError, match="add a header row"):
        read_data_files(path)


def test_huge_table_is_cut_and_says_so(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join("1" for _ in range(5000)) + "\n")
    schema = read_data_files(path)
    assert len(schema.columns) == MAX_COLUMNS
    assert "only" in schema.notes[0]


def _make_sqlite(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE patients (subject_id INTEGER PRIMARY KEY, dob DATE, gender TEXT)")
        db.execute(
            "CREATE TABLE labevents (row_id INTEGER PRIMARY KEY, subject_id INTEGER REFERENCES patients(subject_id),"
            " valuenum REAL, valueuom TEXT)"
        )
        db.executemany("INSERT INTO patients VALUES (?, ?, ?)", [(1, "2050-01-01", "F"), (2, "2061-03-04", "M")])
        db.executemany(
            "INSERT INTO labevents VALUES (?, ?, ?, ?)", [(1, 1, 7.2, "mg/dL"), (2, 1, 140, "mmol/L"), (3, 2, 4.1, "%")]
        )


def test_sqlite_database_with_keys_and_profiles(tmp_path):
    _make_sqlite(tmp_path / "src.db")
    schema = read_source(f"sqlite:///{tmp_path / 'src.db'}")
    columns = {c.key: c for c in schema.columns}
    assert columns["patients.subject_id"].primary_key
    assert columns["labevents.subject_id"].foreign_key == "patients.subject_id"
    assert "unit" in columns["labevents.valueuom"].profile.patterns
    assert columns["labevents.valuenum"].profile.kind == "number"


def test_unreachable_database_never_shows_the_password():
    url = "postgresql+psycopg://crosswalk:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(SchemaError) as error:
        read_database(url)
    assert "s3cret" not in str(error.value) and "***" in str(error.value)
    assert redact_url(url) == "postgresql+psycopg://crosswalk:***@127.0.0.1:1/nowhere"


@pytest.mark.postgres
def test_postgresql_database_with_comments(lab_database):
    schema = read_database(lab_database)
    [uom] = [c for c in schema.columns if c.column == "uom"]
    assert uom.description == "Unit of the result"
    assert "unit" in uom.profile.patterns


def test_hl7_fields_get_their_standard_names():
    assert hl7_field_names()["PID-7"][0] == "Date/Time of Birth"
    samples = sorted((SHARED_DATA / "hl7v2-samples").glob("ADT-A01-*.hl7"))
    if not samples:
        pytest.skip("no HL7 v2 samples beside the project")
    schema = read_hl7_messages(samples)
    columns = {c.column: c for c in schema.columns}
    assert columns["PID-7"].description == "Date/Time of Birth"
    assert columns["PID-7"].profile.kind in ("date", "datetime")


def test_not_hl7_is_refused(tmp_path):
    path = tmp_path / "x.hl7"
    path.write_text("hello")
    with pytest.raises(SchemaError, match="must start with MSH"):
        read_source(str(path))
