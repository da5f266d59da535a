"""Target models and the field suggester (HashingEncoder: plumbing; one slow test with MiniLM)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ingest.schema import SchemaError, SourceColumn, profile_values
from models.fields.names import NameReader, split_identifier
from models.fields.suggest import FieldSuggester, calibrated, type_class
from models.fields.targets import TargetCatalog, UnknownTarget, load_fhir_r4, load_omop


def test_omop_models_carry_descriptions_types_and_keys():
    omop = load_omop("5.4")
    fields = {f.key: f for f in omop.fields}
    assert fields["person.birth_datetime"].type == "datetime"
    assert fields["person.person_id"].required and fields["person.person_id"].primary_key
    assert fields["measurement.unit_concept_id"].foreign_key == "concept.concept_id"
    assert "markdown" not in fields["person.gender_concept_id"].description  # links stripped, text kept
    assert "measurement" in omop.table_descriptions
    assert "episode" in load_omop("5.4").tables and "episode" not in load_omop("5.3").tables


def test_fhir_model_has_resources_elements_and_choice_types():
    fhir = load_fhir_r4()
    fields = {f.key: f for f in fhir.fields}
    assert fields["Patient.birthDate"].type == "date"
    assert "Quantity" in fields["Observation.value[x]"].type.split("|")
    assert fields["Observation.status"].required
    assert "Patient.extension" not in fields  # inherited noise is left out
    assert fhir.table_descriptions["Patient"]


def test_catalog_saves_custom_models_and_names_unknown_ones(tmp_path):
    schema = tmp_path / "warehouse.csv"
    schema.write_text("table,column,description\nfact_lab,result_value,Numeric result\nfact_lab,unit,Unit\n")
    catalog = TargetCatalog(tmp_path / "targets")
    model = catalog.save(schema, "warehouse")
    assert [f.key for f in model.fields] == ["fact_lab.result_value", "fact_lab.unit"]
    assert "warehouse" in catalog.names()
    assert catalog.get("warehouse").fields == model.fields
    with pytest.raises(UnknownTarget, match="omop-cdm-5.4"):
        catalog.get("no-such-model")
    with pytest.raises(SchemaError, match="bundled"):
        catalog.save(schema, "omop-cdm-5.4")


def test_identifiers_become_words():
    assert split_identifier("PAT_DOB") == ["pat", "dob"]
    assert split_identifier("birthDate") == ["birth", "date"]
    assert split_identifier("HbA1cValue") == ["hb", "a", "1", "c", "value"]
    reader = NameReader({"value", "chart", "time"})
    assert reader.words("valueuom", synonyms=False) == ("value", "unit", "of", "measure")
    assert reader.words("charttime", synonyms=False) == ("chart", "time")
    assert "birth" in reader.words("PAT_DOB") and "person" in reader.words("PAT_DOB")


def test_vowel_dropped_names_and_familiar_endings_are_spelled_out():
    reader = NameReader({"diagnosis", "provider", "chart", "character", "item"})
    assert reader.words("DGNS_CD", synonyms=False, contractions=True)[0].startswith("diagnos")
    assert reader.words("prvdr_num", synonyms=False, contractions=True) == ("provider", "number")
    assert reader.words("chart", synonyms=False, contractions=True) == ("chart",)  # a word, not a contraction
    assert reader.words("itemid", synonyms=False) == ("item", "identifier")
    assert reader.words("DGNS_CD", synonyms=False) == ("dgns", "code")  # targets' names are taken as spelled


def test_type_classes():
    assert type_class("varchar(50)") == "text"
    assert type_class("datetime") == "datetime" and type_class("DTM") == "datetime"
    assert type_class("integer") == "integer" and type_class("float") == "number"
    assert type_class("CodeableConcept") == "code"


@pytest.fixture(scope="module")
def omop_suggester():
    from tests.conftest import HashingEncoder

    return FieldSuggester(HashingEncoder()).fit(load_omop("5.4"))


def _best(suggester, columns, top_k=5):
    return {s.source.key: [c.key for c in s.candidates] for s in suggester.suggest(columns, top_k=top_k)}


def test_abbreviated_names_find_their_fields(omop_suggester):
    columns = [
        SourceColumn("patients", "pat_dob", "Date of birth"),
        SourceColumn("patients", "gender"),
        SourceColumn("patients", "subject_id"),
        SourceColumn("patients", "dod", "Date of death"),
    ]
    best = _best(omop_suggester, columns)
    assert best["patients.pat_dob"][0].startswith("person.") and "birth" in best["patients.pat_dob"][0]
    assert best["patients.dod"][0].startswith("death.death_date")
    assert (
        "person.gender_source_value" in best["patients.gender"][:3]
        or "person.gender_concept_id" in best["patients.gender"][:3]
    )


def test_table_context_sends_lab_units_to_measurement(omop_suggester):
    lab = [
        SourceColumn("labevents", "itemid", "Lab test identifier"),
        SourceColumn("labevents", "valuenum", "Numeric result value"),
        SourceColumn("labevents", "valueuom", "Unit of measurement of the value"),
        SourceColumn("labevents", "ref_range_lower", "Lower limit of the reference range"),
        SourceColumn("labevents", "ref_range_upper", "Upper limit of the reference range"),
    ]
    best = _best(omop_suggester, lab)
    assert best["labevents.valueuom"][0].startswith("measurement.unit_")
    assert best["labevents.ref_range_lower"][0] == "measurement.range_low"


def test_value_profiles_count_when_names_say_nothing(omop_suggester):
    plain = SourceColumn("results", "col7")
    profiled = SourceColumn("results", "col7", profile=profile_values(["mg/dL", "mmol/L", "%", "g/dL"]))
    without = omop_suggester.evidence([plain])["values"]
    with_units = omop_suggester.evidence([profiled])["values"]
    unit_fields = [i for i, f in enumerate(omop_suggester.target_.fields) if f.column == "unit_source_value"]
    assert without[0, unit_fields].max() == 0
    assert with_units[0, unit_fields].min() > 0


def test_scores_are_probabilities_and_weak_columns_score_low(omop_suggester):
    [good, nonsense] = omop_suggester.suggest(
        [SourceColumn("person", "year_of_birth", "Year of birth"), SourceColumn("zz", "qqq_xx", "")], top_k=3
    )
    assert 0 <= nonsense.candidates[0].score < good.candidates[0].score <= 1
    assert good.candidates[0].key == "person.year_of_birth"
    assert [c.score for c in good.candidates] == sorted((c.score for c in good.candidates), reverse=True)
    assert set(good.candidates[0].evidence) >= {"name", "semantic", "type", "values", "table"}


def test_calibration_is_monotone_and_penalises_distance_from_the_best():
    totals = np.array([[0.9, 0.5, 0.2]])
    scores = calibrated(totals)[0]
    assert scores[0] > scores[1] > scores[2]
    assert calibrated(np.array([[0.5, 0.5]]))[0, 0] > scores[1]  # same total, but it is this column's best


def test_empty_input_is_empty_output(omop_suggester):
    assert omop_suggester.suggest([]) == []


def _clinic():
    from tests.conftest import REPO

    with (REPO / "tests" / "fields" / "data" / "clinic_omop.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (SourceColumn(r["table"], r["column"], r["description"], r["type"]), set(r["targets"].split("|"))) for r in rows
    ]


@pytest.mark.slow
def test_real_encoder_ranks_a_clinic_extract_well():
    from models.dense import OnnxEncoder

    labelled = _clinic()
    suggester = FieldSuggester(OnnxEncoder()).fit(load_omop("5.4"))
    suggestions = suggester.suggest([c for c, _ in labelled], top_k=5)
    hits = sum(any(c.key in targets for c in s.candidates) for s, (_, targets) in zip(suggestions, labelled))
    assert hits / len(labelled) >= 0.85


@pytest.mark.slow
def test_bundled_fhir_elements_match_a_fresh_export(tmp_path):
    from models.fields.targets import FHIR_CSV, export_fhir_r4

    pytest.importorskip("fhir.resources")
    export_fhir_r4(tmp_path / "elements.csv")
    assert (tmp_path / "elements.csv").read_text(encoding="utf-8") == FHIR_CSV.read_text(encoding="utf-8")
