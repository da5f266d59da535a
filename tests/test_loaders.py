"""Terminology loaders: the hand-written samples in every official format, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.loaders import FORMATS, load_terminology, loader_for
from models.terminology import Terminology, TerminologyFormatError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "terminologies"
EUNOMIA_CONCEPTS = REPO.parent / "shared/data/synthea27nj-omop/CONCEPT.csv"

LOINC = SAMPLES / "loinc" / "Loinc.csv"
RXNCONSO = SAMPLES / "rxnorm" / "RXNCONSO.RRF"
SNOMED = SAMPLES / "snomed"
SNOMED_TERMINOLOGY = SNOMED / "Snapshot" / "Terminology"
OMOP = SAMPLES / "omop"
FHIR = SAMPLES / "fhir" / "codesystem-lab-local.json"


def assert_format_error(path: Path, line: int | None, fragment: str, fmt: str) -> None:
    with pytest.raises(TerminologyFormatError) as caught:
        load_terminology(fmt, path, fmt)
    message = str(caught.value)
    assert path.name in message
    assert caught.value.line == line, message
    if line is not None:
        assert f"line {line}:" in message
    assert fragment in message


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


# -- registry and persistence --------------------------------------------------------------------


LOADED_HERE = ("loinc", "rxnorm", "snomed", "omop", "fhir")


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(ValueError, match="known formats: ") as caught:
        load_terminology("nope", LOINC, "x")
    for fmt in LOADED_HERE:
        assert fmt in str(caught.value)


@pytest.mark.parametrize("fmt", LOADED_HERE)
def test_format_is_registered(fmt: str):
    assert fmt in FORMATS
    assert loader_for(fmt).__module__ == f"models.loaders.{fmt}"


@pytest.mark.parametrize(
    ("fmt", "path"),
    [("loinc", LOINC), ("rxnorm", RXNCONSO), ("snomed", SNOMED), ("omop", OMOP), ("fhir", FHIR)],
)
def test_saved_terminology_loads_back_equal(fmt: str, path: Path, tmp_path: Path):
    loaded = load_terminology(fmt, path, f"{fmt}-sample")
    assert loaded.format == fmt
    loaded.save(tmp_path / "catalog.jsonl.gz")
    again = Terminology.load(tmp_path / "catalog.jsonl.gz")
    assert again == loaded
    assert again.get(loaded.concepts[0].code) == loaded.concepts[0]


# -- LOINC ----------------------------------------------------------------------------------------


def test_loinc_sample():
    loinc = load_terminology("loinc", LOINC, "loinc")
    assert (loinc.name, loinc.format, loinc.version) == ("loinc", "loinc", "2.76")
    assert len(loinc) == 22
    glucose = loinc.get("2345-7")
    assert glucose.display == "Glucose [Mass/volume] in Serum or Plasma"
    assert glucose.synonyms[:3] == ["Glucose SerPl-mCnc", "Glucose (SerPl) [Mass/Vol]", "Glucose, Serum or Plasma"]
    assert {"Glu", "Gluc", "Serum or plasma"} <= set(glucose.synonyms)
    # axis words shared by most of the table say nothing about the analyte
    assert not {"Point in time", "QNT", "Quant"} & set(glucose.synonyms)
    assert glucose.parents == []
    assert glucose.attributes == {
        "component": "Glucose",
        "property": "MCnc",
        "time": "Pt",
        "system": "Ser/Plas",
        "scale": "Qn",
        "method": None,
        "class": "CHEM",
        "class_type": "laboratory",
        "units": "mg/dL",
        "status": "ACTIVE",
        "panel": False,
    }
    assert glucose.active
    assert loinc.get("6690-2").attributes["method"] == "Automated count"
    assert loinc.get("8867-4").attributes["class_type"] == "clinical"


def test_loinc_deprecated_and_discouraged_terms_are_inactive():
    loinc = load_terminology("loinc", LOINC, "loinc")
    assert not loinc.get("24322-0").active  # DEPRECATED
    assert not loinc.get("41653-7").active  # DISCOURAGED
    assert loinc.get("41653-7").attributes["status"] == "DISCOURAGED"


def test_loinc_panels_are_marked():
    loinc = load_terminology("loinc", LOINC, "loinc")
    assert loinc.get("24322-0").attributes["panel"] is True  # class PANEL.CHEM: an order, no default target
    assert loinc.get("2345-7").attributes["panel"] is False


LOINC_HEADER = '"LOINC_NUM","COMPONENT","PROPERTY","LONG_COMMON_NAME","STATUS"\n'


def test_loinc_minimal_table(tmp_path: Path):
    table = write(
        tmp_path / "Loinc_2.80" / "LoincTable" / "Loinc.csv",
        LOINC_HEADER
        + '"718-7","Hemoglobin","MCnc","Hemoglobin [Mass/volume] in Blood","TRIAL"\n'
        + '"2160-0","Creatinine","MCnc","","ACTIVE"\n',
    )
    loinc = load_terminology("loinc", table.parents[1], "loinc")  # the release folder
    assert loinc.version == "2.80"
    assert loinc.get("718-7").active  # TRIAL terms may be used
    assert loinc.get("2160-0").display == "Creatinine:MCnc:::"  # built from the axes present


def test_loinc_related_names_keep_the_analyte_and_drop_other_axes(tmp_path: Path):
    """LOINC gives every synonym of every part to each term carrying the part: "Whole blood" is on
    every Bld term and "PCR" on every amplified one, whatever the analyte. As synonyms they made any
    name that mentions blood or PCR match them, so only the analyte's names are kept."""
    header = '"LOINC_NUM","COMPONENT","PROPERTY","SYSTEM","METHOD_TYP","LONG_COMMON_NAME","RELATEDNAMES2"\n'
    rows = [
        ("2339-0", "Glucose", "MCnc", "Bld", "", "Glucose in Blood", "Glu; Gluc; WB; Whole blood"),
        ("2345-7", "Glucose", "MCnc", "Ser/Plas", "", "Glucose in Serum", "Glu; Gluc; Serum"),
        ("1558-6", "Glucose^post 12H fast", "MCnc", "Ser/Plas", "", "Fasting glucose", "Glu; Fasting; Serum"),
        ("718-7", "Hemoglobin", "MCnc", "Bld", "", "Hemoglobin in Blood", "Hgb; WB; Whole blood"),
        ("4548-4", "Hemoglobin A1c/Hemoglobin.total", "MFr", "Bld", "", "A1c in Blood", "Hgb; HbA1c; WB; Whole blood"),
        ("94500-6", "SARS-CoV-2 RNA", "PrThr", "Respiratory", "Probe.amp.tar", "SARS-CoV-2 RNA", "COVID; PCR; NAAT"),
        ("92141-1", "Influenza virus B RNA", "PrThr", "Respiratory", "Probe.amp.tar", "Flu B RNA", "Flu; PCR; NAAT"),
        (
            "5964-2",
            "Prothrombin time",
            "Time",
            "Bld",
            "Coag",
            "PT in Blood",
            "PT; Protime; Coagulation; WB; Whole blood",
        ),
    ]
    lines = "".join(",".join(f'"{field}"' for field in row) + "\n" for row in rows)
    loinc = load_terminology("loinc", write(tmp_path / "Loinc.csv", header + lines), "loinc")
    assert {"Glu", "Gluc"} <= set(loinc.get("2339-0").synonyms)  # the analyte's, in blood and in serum
    assert not {"WB", "Whole blood"} & set(loinc.get("2339-0").synonyms)  # on every blood term
    assert not {"PCR", "NAAT"} & set(loinc.get("94500-6").synonyms)  # on every amplified term
    assert {"COVID", "Hgb"} <= set(loinc.get("94500-6").synonyms) | set(loinc.get("718-7").synonyms)
    assert "Hgb" in loinc.get("4548-4").synonyms  # two hemoglobin components share the word
    assert "Fasting" in loinc.get("1558-6").synonyms  # one term's own: nothing to tell it by
    assert "Coagulation" in loinc.get("5964-2").synonyms


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ('"COMPONENT","PROPERTY"\n"Glucose","MCnc"\n', 1, "missing required column LOINC_NUM"),
        ('"LOINC_NUM","PROPERTY"\n"2345-7","MCnc"\n', 1, "COMPONENT or LONG_COMMON_NAME"),
        (
            LOINC_HEADER + '"2345-7","Glucose","MCnc","Glucose","ACTIVE"\n"718-7","Hemo',
            3,
            "malformed row",
        ),  # truncated inside a quoted field
        (
            LOINC_HEADER + '"2345-7","Glucose","MCnc","Glucose","ACTIVE"\n"718-7","Hgb"\n',
            3,
            "expected 5 fields as in the header, found 2",
        ),
        (LOINC_HEADER + '"","Glucose","MCnc","Glucose","ACTIVE"\n', 2, "empty LOINC_NUM"),
        (
            LOINC_HEADER + '"2345-7","G","M","G","ACTIVE"\n"2345-7","G","M","G","ACTIVE"\n',
            3,
            "duplicate LOINC_NUM 2345-7",
        ),
    ],
)
def test_loinc_bad_input(tmp_path: Path, text: str, line: int, fragment: str):
    assert_format_error(write(tmp_path / "Loinc.csv", text), line, fragment, "loinc")


def test_loinc_non_utf8_byte_names_its_line(tmp_path: Path):
    path = tmp_path / "Loinc.csv"
    path.write_bytes(
        LOINC_HEADER.encode() + b'"2345-7","Glucose","MCnc","Glucose","ACTIVE"\n'
        b'"718-7","H\xe9moglobine","MCnc","H\xe9moglobine","ACTIVE"\n'
    )
    assert_format_error(path, 3, "not UTF-8 text", "loinc")


# -- RxNorm ---------------------------------------------------------------------------------------


def test_rxnorm_sample():
    rxnorm = load_terminology("rxnorm", RXNCONSO, "rxnorm")
    assert (rxnorm.format, rxnorm.version) == ("rxnorm", "unknown")
    assert len(rxnorm) == 19  # SAB=RXNORM concepts only; DrugBank, MMSL, VANDF, MeSH rows skipped
    amlodipine = rxnorm.get("197361")
    assert amlodipine.display == "amlodipine 5 MG Oral Tablet"
    # the PSN/TMSY "amLODIPine 5 MG Oral Tablet" only differs in case from the display
    assert amlodipine.synonyms == ["amlodipine (as amlodipine besylate) 5 MG Oral Tablet"]
    assert amlodipine.parents == []
    assert amlodipine.attributes == {"tty": "SCD", "term_types": ["PSN", "SCD", "SY", "TMSY"]}
    assert amlodipine.active
    assert rxnorm.get("1191").display == "aspirin"
    assert rxnorm.get("617314").attributes["tty"] == "SBD"


def test_rxnorm_suppressed_atoms():
    rxnorm = load_terminology("rxnorm", RXNCONSO, "rxnorm")
    percocet = rxnorm.get("1049221")
    assert percocet.synonyms == [  # the obsolete (SUPPRESS=O) synonym is left out
        "oxyCODONE HCl 5 MG / Acetaminophen 325 MG Oral Tablet",
        "APAP 325 MG / oxycodone hydrochloride 5 MG Oral Tablet",
    ]
    retired = rxnorm.get("105078")  # every atom obsolete: kept, named, inactive
    assert retired.display == "aspirin 325 MG Enteric Coated Tablet"
    assert retired.synonyms == []
    assert not retired.active


def test_rxnorm_version_from_release_folder(tmp_path: Path):
    rrf = tmp_path / "RxNorm_full_01062025" / "rrf" / "RXNCONSO.RRF"
    rrf.parent.mkdir(parents=True)
    shutil.copy(RXNCONSO, rrf)
    assert load_terminology("rxnorm", rrf.parents[1], "rxnorm").version == "2025-01-06"


RRF_ROW = "1191|ENG||||||3079461|3079461|1191||RXNORM|IN|1191|aspirin|0|N|4096|\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        (
            RRF_ROW + "6809|ENG||||||3095299|3095299|6809||RXNORM|IN|6809|metf",
            2,
            "expected 18 fields separated by '|' (RXNCONSO.RRF), found 15",
        ),
        (RRF_ROW + RRF_ROW.replace("|4096|", "|4096|extra|"), 2, "found 19"),
        ("|ENG||||||3079461|3079461|1191||RXNORM|IN|1191|aspirin|0|N|4096|\n", 1, "empty RXCUI"),
    ],
)
def test_rxnorm_bad_input(tmp_path: Path, text: str, line: int, fragment: str):
    assert_format_error(write(tmp_path / "RXNCONSO.RRF", text), line, fragment, "rxnorm")


def test_rxnorm_without_rxnorm_rows(tmp_path: Path):
    path = write(tmp_path / "RXNCONSO.RRF", RRF_ROW.replace("|RXNORM|", "|MMSL|"))
    assert_format_error(path, None, "no English rows with SAB=RXNORM", "rxnorm")


# -- SNOMED CT ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        SNOMED,
        SNOMED_TERMINOLOGY,
        SNOMED_TERMINOLOGY / "sct2_Concept_Snapshot_INT_20250101.txt",
    ],
)
def test_snomed_sample(path: Path):
    snomed = load_terminology("snomed", path, "snomed")
    assert (snomed.format, snomed.version) == ("snomed", "20250101")
    assert len(snomed) == 24
    mi = snomed.get("22298006")
    assert mi.display == "Myocardial infarction"
    # the inactive "Cardiac infarction" description is left out
    assert mi.synonyms == ["Heart attack", "Infarction of heart", "MI - myocardial infarction"]
    assert mi.parents == ["414545008"]  # not the inactive IS-A, nor the finding-site attribute
    assert mi.attributes == {
        "fsn": "Myocardial infarction (disorder)",
        "semantic_tag": "disorder",
        "definition_status": "primitive",
    }
    assert mi.active


def test_snomed_preferred_term_comes_from_the_us_language_refset():
    snomed = load_terminology("snomed", SNOMED, "snomed")
    diabetes = snomed.get("44054006")
    assert diabetes.display == "Type 2 diabetes mellitus"  # the FSN says "Diabetes mellitus type 2"
    assert diabetes.synonyms[0] == "Diabetes mellitus type 2"
    assert diabetes.parents == ["73211009"]
    ihd = snomed.get("414545008")
    assert ihd.display == "Ischemic heart disease"
    assert "Ischaemic heart disease" in ihd.synonyms  # the GB preferred term
    assert snomed.get("73211009").parents == ["126877002", "362969004"]
    assert snomed.get("5935008").synonyms == ['"The pill" - oral contraception']  # RF2 never quotes
    assert not snomed.get("190331003").active


def test_snomed_without_language_refset_uses_the_fsn(tmp_path: Path):
    shutil.copytree(SNOMED_TERMINOLOGY, tmp_path / "Terminology")
    snomed = load_terminology("snomed", tmp_path / "Terminology", "snomed")
    diabetes = snomed.get("44054006")
    assert diabetes.display == "Diabetes mellitus type 2"
    assert diabetes.synonyms[0] == "Type 2 diabetes mellitus"


CONCEPT_HEADER = "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId\n"
CONCEPT_ROW = "22298006\t20020131\t1\t900000000000207008\t900000000000074008\n"
DESCRIPTION_HEADER = "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificanceId\n"
DESCRIPTION_ROW = (
    "751689013\t20020131\t1\t900000000000207008\t22298006\ten\t900000000000003001\t"
    "Myocardial infarction (disorder)\t900000000000448009\n"
)


def snomed_files(folder: Path, concepts: str, descriptions: str) -> Path:
    write(folder / "sct2_Description_Snapshot-en_INT_20250101.txt", descriptions)
    return write(folder / "sct2_Concept_Snapshot_INT_20250101.txt", concepts)


@pytest.mark.parametrize(
    ("concepts", "descriptions", "bad_file", "line", "fragment"),
    [
        ("", DESCRIPTION_HEADER + DESCRIPTION_ROW, "Concept", 1, "empty file"),
        (
            "id\teffectiveTime\tmoduleId\n",
            DESCRIPTION_HEADER,
            "Concept",
            1,
            "missing required column active, definitionStatusId",
        ),
        (
            CONCEPT_HEADER + CONCEPT_ROW + "73211009\t2002",
            DESCRIPTION_HEADER,
            "Concept",
            3,
            "expected 5 fields as in the header, found 2",
        ),
        (
            CONCEPT_HEADER + CONCEPT_ROW,
            DESCRIPTION_HEADER + DESCRIPTION_ROW[:40],
            "Description",
            2,
            "expected 9 fields as in the header, found 5",
        ),
        (
            CONCEPT_HEADER + CONCEPT_ROW,
            "id\tconceptId\tterm\n",
            "Description",
            1,
            "missing required column effectiveTime, active, typeId",
        ),
    ],
)
def test_snomed_bad_input(tmp_path, concepts, descriptions, bad_file, line, fragment):
    snomed_files(tmp_path, concepts, descriptions)
    with pytest.raises(TerminologyFormatError) as caught:
        load_terminology("snomed", tmp_path, "snomed")
    message = str(caught.value)
    assert f"sct2_{bad_file}_Snapshot" in message
    assert f"line {line}:" in message and fragment in message


def test_snomed_missing_files(tmp_path: Path):
    assert_format_error(tmp_path, None, "expected one sct2_Concept_*Snapshot*.txt", "snomed")
    write(tmp_path / "sct2_Concept_Snapshot_INT_20250101.txt", CONCEPT_HEADER + CONCEPT_ROW)
    assert_format_error(tmp_path, None, "no sct2_Description_*Snapshot*.txt", "snomed")


def test_snomed_concept_without_description(tmp_path: Path):
    concept_file = snomed_files(tmp_path, CONCEPT_HEADER + CONCEPT_ROW, DESCRIPTION_HEADER)
    assert_format_error(concept_file, None, "concept 22298006 has no description", "snomed")


# -- OMOP -----------------------------------------------------------------------------------------


def test_omop_sample():
    omop = load_terminology("omop", OMOP, "omop")
    assert (omop.format, omop.version) == ("omop", "v5.0 30-AUG-24")
    assert len(omop) == 25
    diabetes = omop.get("201826")
    assert diabetes.display == "Type 2 diabetes mellitus"
    assert diabetes.synonyms == [
        "Type II diabetes mellitus",
        "Diabetes mellitus type 2",
        "Non-insulin dependent diabetes mellitus",
        "Type 2 diabetes mellitus (disorder)",
    ]
    assert diabetes.parents == ["201820"]  # "Is a"; "Maps to" and "Subsumes" rows are not parents
    assert diabetes.attributes == {
        "domain": "Condition",
        "vocabulary": "SNOMED",
        "concept_class": "Clinical Finding",
        "standard": True,
        "standard_concept": "S",
        "source_code": "44054006",
        "invalid_reason": None,
    }
    assert diabetes.active


def test_omop_non_standard_invalid_and_quoted_names():
    omop = load_terminology("omop", OMOP / "CONCEPT.csv", "omop")
    icd = omop.get("1567956")
    assert icd.attributes["standard"] is False and icd.attributes["vocabulary"] == "ICD10CM"
    assert icd.active
    upgraded = omop.get("40316773")
    assert not upgraded.active and upgraded.attributes["invalid_reason"] == "U"
    assert upgraded.parents == []  # its "Is a" row is invalid ('D')
    assert omop.get("4329847").parents == []  # its parent is not in CONCEPT.csv
    assert omop.get("4199500").display == 'Syringe 1 mL with needle 27 G x 1/2"'


def test_omop_eunomia_concepts():
    if not EUNOMIA_CONCEPTS.is_file():
        pytest.skip(f"{EUNOMIA_CONCEPTS} not present")
    omop = load_terminology("omop", EUNOMIA_CONCEPTS, "eunomia")  # comma-separated and quoted
    assert len(omop) == 2294
    assert omop.version == "unknown"
    glucose = omop.get("3004501")
    assert glucose.display == "Glucose [Mass/volume] in Serum or Plasma"
    assert glucose.attributes["vocabulary"] == "LOINC"
    assert glucose.attributes["source_code"] == "2345-7"
    assert glucose.attributes["standard"] is True
    assert glucose.active
    prediabetes = omop.get("40316773")
    assert prediabetes.attributes["standard_concept"] is None and not prediabetes.active
    hemogram = omop.get("4015052")  # a quoted name with commas
    assert hemogram.display.startswith("Hemogram, automated, with RBC, WBC, Hgb")


OMOP_HEADER = (
    "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\t"
    "concept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
)
OMOP_ROW = "201826\tType 2 diabetes mellitus\tCondition\tSNOMED\tClinical Finding\tS\t44054006\t20020131\t20991231\t\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ("concept_id\tconcept_name\n1\tx\n", 1, "missing required column domain_id"),
        (
            OMOP_HEADER + OMOP_ROW + "201820\tDiabetes mellitus\tCondition",
            3,
            "expected 10 fields as in the header, found 3",
        ),
        (OMOP_HEADER + OMOP_ROW.replace("201826", "", 1), 2, "concept_id '' is not an integer"),
        (OMOP_HEADER + OMOP_ROW + OMOP_ROW, 3, "duplicate concept_id 201826"),
        (OMOP_HEADER.replace("\t", ",") + '201826,"Type 2 diabetes, unspecif', 2, "malformed row"),
    ],
)
def test_omop_bad_input(tmp_path: Path, text: str, line: int, fragment: str):
    assert_format_error(write(tmp_path / "CONCEPT.csv", text), line, fragment, "omop")


def test_omop_bad_relationship_file(tmp_path: Path):
    write(tmp_path / "CONCEPT.csv", OMOP_HEADER + OMOP_ROW)
    relationships = write(
        tmp_path / "CONCEPT_RELATIONSHIP.csv",
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\t"
        "invalid_reason\n201826\t201820\tMaps to\t20020131\t20991231\t\n201826\t201820\tIs a\n",
    )
    with pytest.raises(TerminologyFormatError) as caught:
        load_terminology("omop", tmp_path, "omop")
    assert caught.value.path == str(relationships) and caught.value.line == 3


# -- FHIR CodeSystem ------------------------------------------------------------------------------


def test_fhir_sample():
    lab = load_terminology("fhir", FHIR, "lab-local")
    assert (lab.format, lab.version) == ("fhir", "2025.1")
    assert len(lab) == 16
    glucose = lab.get("GLU")
    assert glucose.display == "Glucose, serum"
    assert glucose.synonyms == ["GLU", "Blood sugar", "Glucose SerPl"]
    assert glucose.parents == ["BMP", "DIAB"]  # enclosing concept, then the `parent` property
    assert glucose.attributes == {
        "specimen": "Serum",
        "units": "mg/dL",
        "orderable": True,
        "status": "active",
        "definition": "Glucose concentration in serum, hexokinase method.",
    }
    assert glucose.active
    assert lab.get("BMP").attributes["turnaroundHours"] == 4
    assert lab.get("CHEM").parents == []
    assert lab.get("HGB").parents == ["CBC"]
    assert not lab.get("GLU-POC-OLD").active  # status retired


def code_system(concepts: list) -> str:
    return json.dumps({"resourceType": "CodeSystem", "version": "1", "concept": concepts})


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ('{\n  "resourceType": "CodeSystem",\n  "concept": [\n    {"code": "A",}\n  ]\n}', 4, "invalid JSON"),
        ('{"resourceType": "CodeSystem", "concept": [{"code": "A"}', 1, "invalid JSON"),
        ('{"resourceType": "ValueSet"}', None, "expected a FHIR CodeSystem, found resourceType"),
        (
            '{"resourceType": "CodeSystem", "content": "not-present"}',
            None,
            "CodeSystem has no concepts (content='not-present')",
        ),
        (code_system([{"code": "A", "concept": [{"display": "no code"}]}]), None, "concept[0].concept[0] has no code"),
        (code_system([{"code": "A"}, {"code": "A"}]), None, "duplicate code 'A'"),
        (code_system([{"code": "A", "property": [{"valueString": "x"}]}]), None, "concept[0].property[0] has no code"),
        (json.dumps({"resourceType": "Bundle", "entry": []}), None, "a Bundle with 0 CodeSystem entries"),
    ],
)
def test_fhir_bad_input(tmp_path: Path, text: str, line: int | None, fragment: str):
    assert_format_error(write(tmp_path / "codesystem.json", text), line, fragment, "fhir")


def test_fhir_bundle_with_one_code_system_and_inactive_flags(tmp_path: Path):
    concepts = [
        {"code": "A", "display": "Alpha"},
        {"code": "B", "display": "Beta", "property": [{"code": "inactive", "valueBoolean": True}]},
        {
            "code": "C",
            "property": [{"code": "deprecated", "valueDateTime": "2024-01-01"}],
            "designation": [{"value": "Gamma"}],
        },
    ]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": json.loads(code_system(concepts))}]}
    lab = load_terminology("fhir", write(tmp_path / "b.json", json.dumps(bundle)), "b")
    assert [c.active for c in lab] == [True, False, False]
    assert lab.get("C").display == "Gamma"  # no display: the first designation


def test_loaders_record_the_code_system_whatever_the_name(tmp_path):
    from models.catalog import Catalog
    from models.systems import OMOP_URI

    catalog = Catalog(tmp_path)
    loinc = catalog.add("loinc", SAMPLES / "loinc" / "Loinc.csv", "loinc-2.78")
    assert loinc.system == "http://loinc.org"
    assert catalog.identity("loinc-2.78").prefix == "LOINC"
    assert catalog.add("omop", SAMPLES / "omop", "athena").system == OMOP_URI
    fhir = catalog.add("fhir", SAMPLES / "fhir" / "codesystem-lab-local.json", "house")
    assert fhir.system == "http://hospital.example.org/fhir/CodeSystem/lab-local" == catalog.identity("house").uri
    assert catalog.entries()[0].system is not None


def test_a_catalog_saved_before_systems_were_recorded_still_has_an_identity(tmp_path):
    """Older saves carry no `system`: the format, then the name, stand in (as exports did before)."""
    from models.catalog import Catalog
    from models.terminology import Concept, Terminology

    catalog = Catalog(tmp_path)
    Terminology("loinc-old", "loinc", "2.77", [Concept("2345-7", "Glucose")]).save(tmp_path / "loinc-old.jsonl.gz")
    Terminology("snomed", "test", "x", [Concept("1", "a")]).save(tmp_path / "snomed.jsonl.gz")
    Terminology("mine", "test", "x", [Concept("1", "a")]).save(tmp_path / "mine.jsonl.gz")
    assert catalog.identity("loinc-old").uri == "http://loinc.org"
    assert catalog.identity("snomed").uri == "http://snomed.info/sct"
    assert catalog.identity("mine").uri == "urn:crosswalk:terminology:mine"
    assert Terminology.load(tmp_path / "mine.jsonl.gz").system is None
