"""A field project's source over the API: data files (CSV, Parquet), HL7 v2 messages and a database URL,
each through the readers the CLI uses; bad input is one 4xx line and leaves nothing behind."""

from __future__ import annotations

import io
import logging
import uuid

import pandas as pd
import pytest
from sqlmodel import select

from models.terminology import Concept, Terminology
from service import audit
from service.store.db import session_scope
from service.store.tables import AuditEvent, Role
from tests.conftest import SAMPLES
from tests.service.conftest import PG_URL

LABEVENTS = b"itemid,valuenum,valueuom,charttime\n50912,1.1,mg/dL,2101-10-20 08:00\n50971,4.2,mEq/L,2101-10-20 09:00\n"
PATIENTS = b"subject_id,gender,dob\n1,F,2050-01-01\n2,M,2061-03-04\n"
ER7 = "x-application/hl7-v2+er7"
PASSWORD = "s3cret-Pa55"


def field_project(svc, target: str = "omop-cdm-5.4") -> int:
    body = {"name": f"EHR {uuid.uuid4().hex[:6]}", "source_system": "EHR extract", "target_terminology": target}
    response = svc.call("POST", "/projects", Role.mapper, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def upload(svc, project: int, *files: tuple[str, bytes, str]):
    parts = [("files", file) for file in files]
    return svc.call("POST", f"/projects/{project}/source-schema", Role.mapper, files=parts)


def items_of(svc, project: int) -> dict[str, dict]:
    response = svc.call("GET", f"/projects/{project}/items?limit=500", Role.viewer)
    assert response.status_code == 200, response.text
    return {i["code"]: i for i in response.json()["items"]}


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_data_files_import_as_tables_with_value_profiles(fields_service):
    svc = fields_service
    project = field_project(svc)
    diagnoses = parquet(pd.DataFrame({"icd10": ["E11.9", "I10", "J18.9"], "seq_num": [1, 2, 1]}))
    response = upload(
        svc,
        project,
        ("labevents.csv", LABEVENTS, "text/csv"),
        ("patients.csv", PATIENTS, "text/csv"),
        ("diagnoses.parquet", diagnoses, "application/octet-stream"),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "created": 9,
        "updated": 0,
        "unchanged": 0,
        "total": 9,
        "tables": 3,
        "source": "labevents.csv, patients.csv, diagnoses.parquet",
    }
    found = items_of(svc, project)
    assert set(found) >= {"labevents.valueuom", "patients.dob", "diagnoses.icd10"}
    unit = svc.item(project, "labevents.valueuom")["context"]
    assert "unit" in unit["profile"] and "mg/dL" in unit["profile"]
    assert svc.item(project, "diagnoses.icd10")["context"]["profile_patterns"] == "icd10"
    again = upload(svc, project, ("labevents.csv", LABEVENTS, "text/csv"))
    assert again.json()["unchanged"] == 4 and again.json()["created"] == 0  # re-import: nothing new


def test_hl7_messages_import_as_segment_fields(fields_service):
    svc = fields_service
    project = field_project(svc, "fhir-r4")
    message = (SAMPLES / "hl7v2" / "LAB-ORU-1.hl7").read_bytes()
    response = upload(svc, project, ("oru.er7", message, ER7))
    assert response.status_code == 200 and response.json()["source"] == "oru.hl7", response.text
    birth = svc.item(project, "PID.PID-7")
    assert birth["text"] == "Date/Time of Birth" and birth["context"]["table_description"] == "Patient Identification"
    assert "date" in birth["context"]["profile"]


def test_a_schema_csv_upload_reads_as_a_schema(fields_service):
    svc = fields_service
    project = field_project(svc)
    schema = b"table,column,description\npatients,pat_dob,Date of birth\n"
    response = upload(svc, project, ("clinic.csv", schema, "text/csv"))
    assert response.status_code == 200 and list(items_of(svc, project)) == ["patients.pat_dob"], response.text
    too_many = b"table,column\n" + b"".join(b"wide,c%d\n" % i for i in range(2001))
    cut = svc.call(
        "POST", f"/projects/{project}/imports?format=schema", Role.mapper, files={"file": ("s.csv", too_many)}
    )
    assert cut.status_code == 422 and "s.csv: only the first 2000 columns" in cut.json()["detail"], cut.text
    assert list(items_of(svc, project)) == ["patients.pat_dob"]  # refused whole, on the older route too


WIDE = (",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join("1" for _ in range(5000)) + "\n").encode()


BAD_FILES = [
    ([("labs.csv", b"", "text/csv")], 422, "labs.csv: empty file"),
    ([("labs.csv", b"50912,1.1,7\n50971,4.2,8\n", "text/csv")], 422, "labs.csv: the first row holds values"),
    ([("labs.csv", b"\x00\x01PK\x03binary", "text/csv")], 422, "labs.csv: binary data"),
    ([("labs.parquet", b"PAR1 not really", "application/vnd.apache.parquet")], 422, "not a readable Parquet"),
    ([("wide.csv", WIDE, "text/csv")], 422, "only 2000 of 5000 columns"),
    ([("labs.png", b"\x89PNG....", "image/png")], 415, "content type 'image/png'"),
    ([("labs.bin", b"a,b\n1,2\n", "application/octet-stream")], 415, "name it .csv, .parquet or .hl7"),
    ([("msgs.hl7", b"hello", ER7)], 422, "must start with MSH"),
    ([("a.csv", LABEVENTS, "text/csv"), ("a.tsv", PATIENTS, "text/csv")], 422, "two files for table 'a'"),
    ([("a.csv", LABEVENTS, "text/csv"), ("m.hl7", b"MSH|^~\\&|", ER7)], 422, "HL7 v2 messages and tables"),
    ([("good.csv", LABEVENTS, "text/csv"), ("bad.csv", b"", "text/csv")], 422, "bad.csv: empty file"),
]


def test_bad_files_are_one_line_and_import_nothing(fields_service):
    svc = fields_service
    project = field_project(svc)
    before = _audit_seq(svc)
    for files, status, message in BAD_FILES:
        response = upload(svc, project, *files)
        assert response.status_code == status, (files[0][0], response.text)
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert message in detail and "\n" not in detail and "/tmp" not in detail, detail
    assert items_of(svc, project) == {} and _audit_seq(svc) == before  # nothing half-written


def test_a_request_that_is_not_multipart_is_a_422(fields_service):
    project = field_project(fields_service)
    response = fields_service.call("POST", f"/projects/{project}/source-schema", Role.mapper, json={"url": "x"})
    assert response.status_code == 422 and "files" in response.json()["detail"]


def test_a_codes_project_refuses_source_columns(fields_service):
    service = fields_service
    tiny = Terminology("loinc", "test", "1", [Concept("2345-7", "Glucose")])
    tiny.save(service.settings.terminologies_dir / "loinc.jsonl.gz")
    project = field_project(service, "loinc")
    response = upload(service, project, ("labevents.csv", LABEVENTS, "text/csv"))
    assert response.status_code == 409 and "--kind fields" in response.json()["detail"]
    schema = {"file": ("schema.csv", b"table,column\nlab,uom\n", "text/csv")}
    old_route = service.call("POST", f"/projects/{project}/imports?format=schema", Role.mapper, files=schema)
    assert old_route.status_code == 409, old_route.text
    body = {"url": f"postgresql+psycopg://crosswalk:{PASSWORD}@127.0.0.1:1/ehr"}
    database = service.call("POST", f"/projects/{project}/source-schema/database", Role.mapper, json=body)
    assert database.status_code == 409  # refused before any connection is tried


def test_a_viewer_may_not_import(fields_service):
    project = field_project(fields_service)
    files = [("files", ("labevents.csv", LABEVENTS, "text/csv"))]
    response = fields_service.call("POST", f"/projects/{project}/source-schema", Role.viewer, files=files)
    assert response.status_code == 403


# -- databases ----------------------------------------------------------------------------------------
def import_database(svc, project: int, url: str, db_schema: str | None = None):
    body = {"url": url} | ({"db_schema": db_schema} if db_schema else {})
    return svc.call("POST", f"/projects/{project}/source-schema/database", Role.mapper, json=body)


BAD_URLS = [
    (f"postgresql+psycopg://crosswalk:{PASSWORD}@127.0.0.1:1/ehr", "Connection refused"),
    (f"postgresql+psycopg://crosswalk:{PASSWORD}@127.0.0.1:1/ehr?bogus=1", "cannot read the database"),
    ("sqlite:////etc/crosswalk.db", "names a file on the server"),
    (f"nosuchdb://crosswalk:{PASSWORD}@host/ehr", "not a usable database URL"),
    (f"crosswalk:{PASSWORD}@host/ehr", "not a database URL"),
]


def test_an_unusable_database_url_is_a_422_that_never_shows_the_password(fields_service, caplog):
    svc = fields_service
    project = field_project(svc)
    before = _audit_seq(svc)
    for url, message in BAD_URLS:
        with caplog.at_level(logging.DEBUG):
            response = import_database(svc, project, url)
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert message in detail and "\n" not in detail, detail
        assert PASSWORD not in response.text and PASSWORD not in caplog.text
    assert items_of(svc, project) == {} and _audit_seq(svc) == before


@pytest.mark.postgres
def test_a_database_imports_its_columns_and_the_password_is_kept_nowhere(fields_service, lab_database, caplog):
    svc = fields_service
    project = field_project(svc)
    schema = lab_database.split("search_path%3D")[1]
    with_password = PG_URL.replace("postgres@", f"postgres:{PASSWORD}@")  # the test server trusts: any password
    assert PASSWORD in with_password
    with caplog.at_level(logging.DEBUG):
        response = import_database(svc, project, with_password, schema)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2 and response.json()["tables"] == 1
    assert PASSWORD not in response.text and PASSWORD not in caplog.text
    uom = svc.item(project, "lab_result.uom")
    assert uom["text"] == "Unit of the result" and "unit" in uom["context"]["profile"]
    with session_scope(svc.engine) as session:
        events = list(session.exec(select(AuditEvent)))
    assert events and PASSWORD not in repr([e.model_dump() for e in events])


@pytest.mark.postgres
def test_the_store_itself_is_not_a_source(fields_service):
    svc = fields_service
    if not svc.url.startswith("postgresql"):
        pytest.skip("the store is SQLite here, which the database route never reads")
    response = import_database(svc, field_project(svc), svc.url)
    assert response.status_code == 422 and "crosswalk's own store" in response.json()["detail"]


def _audit_seq(svc) -> int:
    with session_scope(svc.engine) as session:
        return max((e.seq for e in audit.history(session)), default=0)


@pytest.mark.slow
def test_fuzzed_source_imports_never_get_a_server_error(fields_service):
    """Schemathesis on the source routes of a field project (the suite's fuzz test meets a codes project,
    which these routes refuse before reading anything)."""
    import schemathesis
    from schemathesis import GenerationMode

    from tests.service.test_fuzz import _fuzz

    svc = fields_service
    project = field_project(svc)
    schema = schemathesis.openapi.from_asgi("/openapi.json", svc.app)
    operations = [r.ok() for r in schema.get_all_operations() if "/source-schema" in r.ok().path]
    assert len(operations) == 2
    errors = [
        error
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for error in _fuzz(operation, mode, svc.auth(Role.admin), project)
    ]
    assert not errors, "\n".join(errors)
