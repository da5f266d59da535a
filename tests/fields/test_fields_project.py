"""Field mapping in projects: a target data model served as a terminology, through the same review,
releases and exports as codes."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

import service.engine
from ingest.schema import read_source
from models.fields.serving import FieldTerminologySuggester, as_terminology, source_column
from models.fields.suggest import FieldSuggester
from models.fields.targets import load_omop
from models.items import SourceItem
from models.terminology import Concept, Terminology
from service import crud, decisions
from service.cli import app as cli
from service.crud_imports import import_items, schema_rows
from service.settings import get_settings
from service.store.db import engine_for, session_scope
from service.store.tables import DecisionCreate, Role
from tests.ui.conftest import login

SCHEMA_CSV = """table,column,description,type
patients,pat_dob,Date of birth of the patient,date
patients,sex_cd,Administrative sex,varchar(1)
labevents,valueuom,Unit of measure of the result,varchar(20)
labevents,valuenum,Numeric result value,float
"""


def test_a_target_model_reads_as_a_terminology_of_fields():
    terminology = as_terminology(load_omop("5.4"))
    field = terminology.get("person.birth_datetime")
    assert terminology.name == "omop-cdm-5.4" and terminology.format == "target-model"
    assert field.display.startswith("person.birth_datetime: ") and field.attributes["table"] == "person"
    assert terminology.get("person.gender_concept_id").attributes["fk"] == "concept.concept_id"


def test_the_suggester_adapter_ranks_items_and_honours_a_table_filter(encoder):
    model = load_omop("5.4")
    suggester = FieldTerminologySuggester(FieldSuggester(encoder).fit(model), model)
    item = SourceItem("labevents.valueuom", "Unit of measure", {"table": "labevents", "column": "valueuom"})
    [ranked] = suggester.suggest([item], top_k=3)
    assert [s.rank for s in ranked] == [1, 2, 3] and all(0 <= s.score <= 1 for s in ranked)
    assert {"name", "semantic", "lexical", "table"} <= set(ranked[0].evidence)
    [only_person] = suggester.suggest([item], top_k=3, where={"table": "person"})
    assert only_person and all(s.code.startswith("person.") for s in only_person)
    with pytest.raises(ValueError, match="no field"):
        suggester.suggest([item], where={"table": "no_such_table"})


def test_an_item_without_context_is_read_from_its_code():
    column = source_column(SourceItem("labevents.valueuom", "Unit"))
    assert (column.table, column.column) == ("labevents", "valueuom")


def test_fields_project_from_schema_to_released_mapping_spec(fields_service):
    svc = fields_service
    body = {"name": "Clinic", "source_system": "Clinic EHR", "target_terminology": "omop-cdm-5.4"}
    response = svc.call("POST", "/projects", Role.mapper, json=body)
    assert response.status_code == 201, response.text
    project = response.json()["id"]
    files = {"file": ("clinic_schema.csv", SCHEMA_CSV.encode(), "text/csv")}
    imported = svc.call("POST", f"/projects/{project}/imports?format=schema", Role.mapper, files=files)
    assert imported.status_code == 200 and imported.json()["created"] == 4, imported.text
    suggested = svc.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"top_k": 5})
    assert suggested.status_code == 200 and suggested.json()["items"] == 4, suggested.text
    assert suggested.json()["model_version"].startswith("field-suggester:omop-cdm-5.4")

    found = svc.call("GET", f"/projects/{project}/search?q=birth%20datetime", Role.mapper)
    assert found.status_code == 200 and "person.birth_datetime" in [c["code"] for c in found.json()], found.text
    item = svc.item(project, "patients.pat_dob")
    candidates = [s["code"] for s in item["suggestions"]]
    assert all(c.count(".") == 1 for c in candidates)
    assert (
        svc.decide(project, "patients.pat_dob", action="remap", target_code="person.birth_datetime").status_code == 200
    )
    approved = svc.decide(project, "labevents.valueuom", action="remap", target_code="measurement.unit_source_value")
    assert approved.status_code == 200, approved.text
    assert svc.decide(project, "patients.sex_cd", action="unmappable", comment="free text").status_code == 200
    release = svc.call("POST", f"/projects/{project}/releases", Role.reviewer, json={})
    assert release.status_code in (200, 201), release.text

    spec = svc.call("GET", f"/projects/{project}/releases/1/export?format=mapping-spec", Role.viewer)
    assert spec.status_code == 200, spec.text
    rows = list(csv.DictReader(io.StringIO(spec.text)))
    by_source = {r["source_column"]: r for r in rows}
    assert by_source["pat_dob"]["target_table"] == "person"
    assert by_source["pat_dob"]["target_column"] == "birth_datetime"
    assert by_source["valueuom"]["target_table"] == "measurement"
    assert by_source["sex_cd"]["target_table"] == "" and "valuenum" not in by_source  # undecided: not released
    markdown = svc.call("GET", f"/projects/{project}/releases/1/export?format=mapping-spec-md", Role.viewer).text
    assert "## measurement" in markdown and "| unit_source_value | labevents.valueuom |" in markdown
    assert "## Source columns not mapped" in markdown and "patients.sex_cd" in markdown
    sssom = svc.call("GET", f"/projects/{project}/releases/1/export?format=sssom", Role.viewer).text
    assert "SRC:patients.pat_dob\t" in sssom and "OMOPCDM54:person.birth_datetime" in sssom
    page = login(svc, Role.viewer).get(f"/ui/projects/{project}/releases")
    assert page.status_code == 200 and "mapping-spec" in page.text  # the download link
    assert "athena" not in sssom  # fields of the CDM, not concepts of the OMOP vocabularies
    omop = svc.call("GET", f"/projects/{project}/releases/1/export?format=omop", Role.viewer)
    assert omop.status_code in (409, 422) and "OMOP" in omop.text


def test_the_item_page_shows_a_field_with_its_value_profile(fields_service, tmp_path):
    svc = fields_service
    body = {"name": "Lab feed", "source_system": "LIS extract", "target_terminology": "omop-cdm-5.4"}
    project = svc.call("POST", "/projects", Role.mapper, json=body).json()["id"]
    data = tmp_path / "labevents.csv"
    data.write_text("itemid,valuenum,valueuom\n50912,1.1,mg/dL\n50971,4.2,mEq/L\n50912,0.9,mg/dL\n")
    with session_scope(svc.engine) as session:
        import_items(session, crud.get_project(session, project), schema_rows(read_source(str(data))), "tester")
    svc.suggest(project)
    page = login(svc, Role.reviewer).get(f"/ui/projects/{project}/review?code=labevents.valueuom&status=all")
    assert page.status_code == 200, page.text
    assert "<dt>profile</dt>" in page.text and "mg/dL" in page.text  # the value profile, with examples
    assert "measurement." in page.text or "observation." in page.text  # candidates are target fields


def test_an_unknown_target_model_is_a_422(fields_service):
    body = {"name": "X", "source_system": "X", "target_terminology": "omop-cdm-9.9"}
    response = fields_service.call("POST", "/projects", Role.mapper, json=body)
    assert response.status_code == 422 and "omop-cdm-5.4" in response.text


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_fields_project_create_import_suggest(env, encoder, monkeypatch):
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()
    get_settings.cache_clear()
    schema = env / "schema.csv"
    schema.write_text(SCHEMA_CSV)
    run(
        "project",
        "create",
        "--name",
        "Clinic",
        "--source-system",
        "EHR",
        "--target",
        "omop-cdm-5.4",
        "--kind",
        "fields",
    )
    assert "4 new" in run("project", "import-schema", "-p", "Clinic", str(schema))
    assert "field-suggester:omop-cdm-5.4" in run("project", "suggest", "-p", "Clinic", "--top", "3")
    assert "suggested=4" in run("project", "list")
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        project = crud.get_project(session, "Clinic")
        item = crud.get_item(session, project, "labevents.valueuom")
        decision = DecisionCreate(action="remap", target_code="measurement.unit_source_value")
        target = service.engine.terminologies(get_settings()).target("omop-cdm-5.4")
        decisions.decide(session, project, item.code, decision, "rev", item.version, target)
    assert "release 1: 1 mappings" in run("release", "create", "-p", "Clinic")
    spec = run("release", "export", "-p", "Clinic", "-r", "1", "-f", "mapping-spec-md")
    assert "## measurement" in spec and "| unit_source_value | labevents.valueuom |" in spec
    service.engine.served_suggesters.cache_clear()
    service.engine.terminologies.cache_clear()


def user_error(monkeypatch, capsys, *args: str) -> str:
    """The real entry point's one-line error (exit 2) for a bad command line."""
    from service.cli.app import main

    monkeypatch.setattr("sys.argv", ["crosswalk", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "omop-cdm-9.9", "--kind", "fields"], "not a target data model"),
        (["--target", "omop-cdm-5.4", "--kind", "codes"], "is a data model"),
        (["--target", "omop-cdm-5.4", "--kind", "tables"], "choose codes or fields"),
    ],
)
def test_cli_bad_kind_or_target_is_one_line_exit_2(env, monkeypatch, capsys, args, message):
    assert message in user_error(monkeypatch, capsys, "project", "create", "--name", "P", "--source-system", "S", *args)


def test_cli_import_schema_of_a_missing_source_is_exit_2(env, monkeypatch, capsys):
    run("project", "create", "--name", "Clinic", "--source-system", "EHR", "--target", "omop-cdm-5.4")
    missing = str(env / "nowhere.csv")
    assert "no such file" in user_error(monkeypatch, capsys, "project", "import-schema", "-p", "Clinic", missing)


def test_cli_import_schema_into_a_codes_project_is_refused(env, monkeypatch, capsys):
    (env / "terminologies").mkdir()
    tiny = Terminology("loinc", "test", "1", [Concept("2345-7", "Glucose")])
    tiny.save(env / "terminologies" / "loinc.jsonl.gz")
    run("project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc")
    schema = env / "schema.csv"
    schema.write_text(SCHEMA_CSV)
    assert "--kind fields" in user_error(monkeypatch, capsys, "project", "import-schema", "-p", "Lab", str(schema))


def test_cli_import_schema_refuses_a_source_over_the_column_limit_whole(env, monkeypatch, capsys):
    run("project", "create", "--name", "Wide", "--source-system", "EHR", "--target", "omop-cdm-5.4")
    wide = env / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join("1" for _ in range(5000)) + "\n")
    error = user_error(monkeypatch, capsys, "project", "import-schema", "-p", "Wide", str(wide))
    assert "only 2000 of 5000 columns" in error and "nothing was imported" in error
    with session_scope(engine_for(f"sqlite:///{env / 'cli.db'}")) as session:
        assert crud.list_items(session, crud.get_project(session, "Wide"), None, 0, 10)[0] == 0
