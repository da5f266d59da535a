"""LOINC-aware ranking: axes read from sources and concepts, usable targets by default, weak matches flagged."""

from __future__ import annotations

import pytest

from models.axes import NO_AXES, axis_features, concept_axes, source_axes
from models.items import NO_CONFIDENT_MATCH, SourceItem, Suggestion, no_confident_match
from models.suggest import Suggester
from models.terminology import Concept, Terminology
from models.text import LAB_ABBREVIATIONS, acids_as_anions, expand_unknown, table_acids, without_reflex


def _axes_of(display: str, **attributes):
    return concept_axes(display, [], attributes)


def test_the_unit_states_the_property_and_a_contradicting_candidate_conflicts():
    source = source_axes("Plt ct", {"unit": "10*3/uL"})
    platelets = _axes_of("Platelets [#/volume] in Blood")
    glucose = _axes_of("Glucose [Mass/volume] in Serum or Plasma")
    (agree_p, conflict_p, _, prop_p), (agree_g, conflict_g, _, prop_g) = axis_features(source, [platelets, glucose])
    assert conflict_p == 0 and prop_p == 0 and agree_p >= 1
    assert conflict_g >= 1 and prop_g == 1


@pytest.mark.parametrize(
    ("unit", "prop"),
    [
        ("mg/dL", "mcnc"),
        ("mmol/L", "scnc"),
        ("%", "mfr"),
        ("/uL", "ncnc"),
        ("U/L", "ccnc"),
        ("mg/24h", "mrat"),
        # as local systems write them: the micro sign, hours spelt out, per cubic millimetre
        ("\u00b5g/dL", "mcnc"),
        ("\u00b5mol/L", "scnc"),
        ("mg/24 hr", "mrat"),
        ("g/24 hours", "mrat"),
        ("THOU/CMM", "ncnc"),
        ("MIL/CMM", "ncnc"),
    ],
)
def test_units_map_to_loinc_properties(unit, prop):
    assert prop in source_axes("x", {"unit": unit}).property


def test_the_specimen_comes_from_the_fluid_column_or_the_name():
    assert source_axes("TSH", {"fluid": "Serum"}).system == {"serpl"}
    assert source_axes("Chloride Ur Qn", {}).system == {"ur"}
    assert source_axes("Protein CSF", {}).system == {"csf"}
    assert source_axes("Glucose", {}).system == frozenset()  # unstated: neither for nor against
    # a specimen word naming cells is the analyte: "Plasma cells/100 leukocytes in Blood" must not conflict
    assert source_axes("Plasma Cells %", {"unit": "%"}).system == frozenset()
    assert source_axes("Glucose Plasma", {}).system == {"serpl"}


def test_a_source_in_serum_contradicts_a_candidate_in_urine_and_timing_counts():
    source = source_axes("Creatinine SerPl Qn", {"unit": "mg/dL"})
    serum = _axes_of("Creatinine [Mass/volume] in Serum or Plasma")
    urine24 = _axes_of("Creatinine [Mass/time] in 24 hour Urine")
    serum_row, urine_row = axis_features(source, [serum, urine24])
    assert serum_row[1] == 0 and urine_row[1] >= 3  # system, property and timing all disagree
    assert urine_row[2] == 1


@pytest.mark.parametrize("fluid", ["24 Hr Urine", "Urine, 24 hour", "URINE 24H"])
def test_a_fluid_column_that_says_24_hours_states_a_timed_collection(fluid):
    # mg/dL alone would say a single specimen: the column's collection wins
    source = source_axes("Calcium", {"fluid": fluid, "unit": "mg/dL"})
    assert source.time == "24h"
    timed, random = _axes_of("Calcium [Mass/volume] in 24 hour Urine"), _axes_of("Calcium [Mass/volume] in Urine")
    timed_row, random_row = axis_features(source, [timed, random])
    assert timed_row[0] > random_row[0] and random_row[1] >= 1
    assert source_axes("Calcium", {"fluid": "Urine", "unit": "mg/dL"}).time == "pt"


def test_the_very_specimen_counts_more_than_its_group():
    nasopharynx = _axes_of("SARS-CoV-2 RNA [Presence] in Nasopharynx by NAA with probe detection")
    respiratory = _axes_of("SARS-CoV-2 RNA [Presence] in Respiratory specimen by NAA with probe detection")
    one = source_axes("SARS-CoV-2", {"fluid": "nasopharyngeal swab"})
    (agree_nph, *_), (agree_resp, *_) = axis_features(one, [nasopharynx, respiratory])
    assert agree_nph > agree_resp >= 1  # both respiratory, only one the stated specimen
    # several respiratory specimens mean LOINC's generic respiratory specimen
    several = source_axes("SARS-CoV-2", {"fluid": "Nasal swab; nasopharyngeal swab; oropharyngeal swab"})
    (agree_nph, *_), (agree_resp, *_) = axis_features(several, [nasopharynx, respiratory])
    assert agree_resp > agree_nph >= 1
    # and serum, plasma or whole blood is "Ser/Plas/Bld", not "Ser/Plas"
    either = source_axes("SARS-CoV-2 IgG", {"fluid": "serum; plasma; venous whole blood"})
    both = concept_axes("x", [], {"system": "Ser/Plas/Bld"})
    serum = concept_axes("x", [], {"system": "Ser/Plas"})
    (agree_both, *_), (agree_serum, *_) = axis_features(either, [both, serum])
    assert agree_both > agree_serum >= 1
    assert source_axes("pH", {"fluid": "arterial blood"}).specimen == {"blda"}


def test_another_draw_of_the_same_group_contradicts_the_one_stated():
    venous = source_axes("pO2", {"fluid": "Venous Blood", "unit": "mm[Hg]"})
    generic, same, other = (
        _axes_of(f"Oxygen [Partial pressure] in {system}") for system in ("Blood", "Venous blood", "Arterial blood")
    )
    (agree_g, conflict_g, *_), (agree_s, conflict_s, *_), (_, conflict_o, system_o, _) = axis_features(
        venous, [generic, same, other]
    )
    assert agree_s > agree_g and conflict_g == conflict_s == 0  # plain "Blood" is no contradiction
    assert conflict_o == 1 and system_o == 1
    swab = source_axes("SARS-CoV-2 RNA", {"specimen": "Nasopharyngeal swab"})
    [(_, _, throat_conflict, _)] = axis_features(swab, [_axes_of("SARS-CoV-2 RNA [Presence] in Throat")])
    assert throat_conflict == 1


@pytest.mark.parametrize(
    ("name", "fits", "contradicts"),
    [
        (
            "TESTOSTERONE, TOTAL",
            "Testosterone [Mass/volume] in Serum or Plasma",
            "Testosterone Free [Mass/volume] in Serum",
        ),
        ("Free T4", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", "Thyroxine (T4) [Mass/volume] in Serum"),
        ("FT4", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", "Thyroxine (T4) [Mass/volume] in Serum"),
        ("Calcium, Ionized", "Calcium.ionized [Moles/volume] in Blood", "Calcium [Moles/volume] in Blood"),
    ],
)
def test_the_form_of_the_analyte_a_name_states(name, fits, contradicts):
    """Free against total, ionized against total: LOINC writes the form in the component."""
    (_, conflict_fit, *_), (_, conflict_other, *_) = axis_features(
        source_axes(name, {}), [_axes_of(fits), _axes_of(contradicts)]
    )
    assert conflict_fit == 0 and conflict_other == 1
    (_, unstated, *_), _ = axis_features(source_axes("T4", {}), [_axes_of(fits), _axes_of(contradicts)])
    assert unstated == 0  # a name without a form contradicts neither


def test_a_column_that_says_only_blood_is_read_with_the_lab_section():
    # A dictionary's fluid "Blood" is where the sample was drawn: chemistry measures serum or plasma.
    chemistry = source_axes("Sodium", {"fluid": "Blood", "category": "Chemistry"})
    gas = source_axes("Sodium", {"fluid": "Blood", "category": "Blood Gas"})
    unknown = source_axes("Sodium", {"fluid": "Blood"})
    serum = _axes_of("Sodium [Moles/volume] in Serum or Plasma")
    whole = _axes_of("Sodium [Moles/volume] in Blood")
    (agree_s, conflict_s, sys_s, _), (agree_w, conflict_w, sys_w, _) = axis_features(chemistry, [serum, whole])
    assert agree_s > agree_w and conflict_s == 0 and conflict_w == 1 and sys_s == sys_w == 0
    (agree_s, conflict_s, *_), (agree_w, conflict_w, *_) = axis_features(gas, [serum, whole])
    assert agree_w > agree_s >= 1 and conflict_s == conflict_w == 0  # coagulation (plasma) sits here too
    (agree_s, conflict_s, *_), (agree_w, conflict_w, *_) = axis_features(unknown, [serum, whole])
    assert agree_s == agree_w >= 1 and conflict_s == conflict_w == 0  # no section: neither preferred
    # the name says more than the column; a whole-blood column stays whole blood
    assert source_axes("Potassium, Whole Blood", {"fluid": "Blood", "category": "Chemistry"}).system == {"bld"}
    assert source_axes("Glucose", {"fluid": "whole blood", "category": "Chemistry"}).system == {"bld"}
    csf = source_axes("Glucose", {"fluid": "Cerebrospinal Fluid (CSF)", "category": "Chemistry"})
    assert csf.system == {"csf"}  # not any body fluid: "fluid" is no second specimen
    pleural, spinal = _axes_of("Glucose in Pleural fluid"), _axes_of("Glucose in Cerebral spinal fluid")
    (_, _, pleural_conflict, _), (_, _, spinal_conflict, _) = axis_features(csf, [pleural, spinal])
    assert pleural_conflict == 1 and spinal_conflict == 0


@pytest.mark.parametrize("section", ["Urinalysis", "UA", "Urine Chemistry"])
def test_a_urinalysis_section_says_urine_where_nothing_else_does(section):
    assert source_axes("Protein", {"category": section}).system == {"ur"}
    assert source_axes("Protein", {"category": "Chemistry"}).system == frozenset()
    assert source_axes("Protein", {"category": section, "fluid": "CSF"}).system == {"csf"}  # the column wins


def test_names_that_say_of_their_specimen_state_it():
    assert _axes_of("pH of Urine by Test strip").system == {"ur"}
    assert _axes_of("Hematocrit [Volume Fraction] of Blood").system == {"bld"}
    source = source_axes("pH", {"fluid": "Urine"})
    urine, serum = _axes_of("pH of Urine"), _axes_of("pH of Serum or Plasma")
    (_, conflict_u, *_), (_, conflict_s, system_s, _) = axis_features(source, [urine, serum])
    assert conflict_u == 0 and system_s == 1


@pytest.mark.parametrize(
    ("unit", "inside", "outside"),
    [
        ("BAU/mL", "acnc", "ccnc"),  # assay units: arbitrary, never an enzyme's activity
        ("AU/mL", "acnc", "ccnc"),
        ("log IU/mL", "lacnc", "acnc"),  # a viral load in log units is not one in units
        ("fL", "entvol", "mcnc"),
        ("mm/h", "vel", "time"),
        ("#/uL", "ncnc", "acnc"),  # a cell count as a lab dictionary writes it
        ("#/hpf", "naric", "acnc"),
        ("#/HPF", "naric", "ncnc"),  # per microscope field: never per volume
        ("x10E3/uL", "ncnc", "mcnc"),  # reference laboratories' spellings
        ("Thousand/uL", "ncnc", "mcnc"),
        ("copies/mL", "ncnc", "acnc"),
        ("mg/dL (calc)", "mcnc", "scnc"),  # a reference laboratory's note beside its unit
        ("mcg/mL FEU", "mcnc", "acnc"),  # D-dimer in fibrinogen-equivalent units
        ("mL/min/1.73m2", "arvrat", "vel"),  # an eGFR, per body surface
    ],
)
def test_assay_log_and_cell_units_state_their_own_property(unit, inside, outside):
    properties = source_axes("x", {"unit": unit}).property
    assert inside in properties and outside not in properties


@pytest.mark.parametrize(
    ("name", "context", "fits", "contradicts"),
    [
        # a name that says "ratio" states a ratio, whatever its unit
        (
            "BUN/Creatinine Ratio",
            {"fluid": "Serum"},
            "Urea nitrogen/Creatinine [Mass Ratio] in Serum or Plasma",
            "Urea nitrogen [Mass/volume] in Serum or Plasma",
        ),
        # "A/B in ..." is a part of a whole: it contradicts an activity unit
        (
            "Alk Phos (Tot)",
            {"unit": "U/L"},
            "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
            "Alkaline phosphatase.liver/Alkaline phosphatase.total in Serum or Plasma",
        ),
    ],
)
def test_a_candidate_of_another_property_conflicts(name, context, fits, contradicts):
    source = source_axes(name, context)
    (_, _, _, fits_conflict), (_, _, _, other_conflict) = axis_features(source, [_axes_of(fits), _axes_of(contradicts)])
    assert fits_conflict == 0 and other_conflict == 1


def test_loinc_parts_win_over_the_name():
    axes = concept_axes("whatever", [], {"system": "Ur", "property": "SCnc", "time": "24H", "scale": "Qn"})
    assert axes.system == {"ur"} and axes.property == {"scnc"} and axes.time == "24h" and axes.scale == "qn"


@pytest.mark.parametrize(
    ("parts", "system", "method"),
    [
        ({"system": "Ser/Plas", "method": "Probe.amp.sig"}, {"serpl"}, "naa"),  # a part read by its words
        ({"system": "Nph", "method": "Non-probe.amp.tar"}, {"resp"}, "naa"),
        ({"system": "Respiratory", "method": "IA.rapid"}, {"resp"}, "ia"),
        ({"system": "Bone mar", "method": "RIA"}, {"marrow"}, "ia"),
        ({"system": "Ser/Plas^Donor", "method": "LC/MS/MS"}, {"serpl"}, "ms"),  # a super system
        ({"system": "Urine+Ser/Plas", "method": "Calculated"}, {"ur", "serpl"}, "calc"),  # a clearance
        ({"system": "Urine", "method": "Screen"}, {"ur"}, ""),  # says nothing of the technique
    ],
)
def test_loinc_parts_as_a_release_writes_them(parts, system, method):
    """A release's own part values read as the long name would: the fusion learnt on both."""
    axes = concept_axes("X [Mass/volume] in Blood by Immunoassay", [], {"property": "MCnc", **parts})
    assert axes.system == system and axes.method == method


@pytest.mark.parametrize(
    "display, prop, scale",
    [
        ("pH of Pleural fluid", "lscnc", "qn"),
        ("Specific gravity of Urine", "rden", "qn"),
        ("Color of Urine", "type", "nom"),
    ],
)
def test_long_names_without_a_bracket_state_their_property(display, prop, scale):
    axes = concept_axes(display, [], {})
    assert axes.property == {prop} and axes.scale == scale
    # so an enzyme's unit contradicts "pH of Pleural fluid" as the table's PROPERTY part (LsCnc) would
    ldh = source_axes("LDH, Pleural Fluid", {"unit": "U/L"})
    assert axis_features(ldh, [concept_axes("pH of Pleural fluid", [], {})])[0, 3] == 1


def test_concepts_without_axes_score_zero_everywhere():
    source = source_axes("Glucose SerPl", {"unit": "mg/dL"})
    assert not axis_features(source, [NO_AXES, NO_AXES]).any()


@pytest.fixture
def tiny_loinc() -> Terminology:
    concepts = [
        Concept("2345-7", "Glucose [Mass/volume] in Serum or Plasma", [], [], {"panel": False}),
        Concept("2339-0", "Glucose [Mass/volume] in Blood", [], [], {"panel": False}),
        Concept("777-3", "Platelets [#/volume] in Blood", [], [], {"panel": False}),
        Concept("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", ["TSH"], [], {"panel": False}),
        Concept("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma", [], [], {"panel": True}),
        Concept("1234-5", "Retired glucose", [], [], {"panel": False}, active=False),
    ]
    return Terminology("tiny-loinc", "loinc", "1", concepts)


@pytest.fixture
def loinc_suggester(tiny_loinc, encoder, tmp_path):
    return Suggester(tiny_loinc, encoder, cache_dir=tmp_path)


def test_loinc_panels_are_no_default_target_unless_asked(loinc_suggester):
    [plain] = loinc_suggester.suggest([SourceItem("x", "metabolic panel serum")], top_k=10, where={"panel": False})
    assert "24323-8" not in [s.code for s in plain]
    [default] = loinc_suggester.suggest([SourceItem("x", "Glucose serum")], top_k=10)
    assert "24323-8" not in [s.code for s in default] and "1234-5" not in [s.code for s in default]
    [asked] = loinc_suggester.suggest([SourceItem("x", "metabolic panel")], top_k=10)
    assert "24323-8" in [s.code for s in asked]  # the source names a panel
    [widened] = loinc_suggester.suggest([SourceItem("x", "Glucose serum")], top_k=10, where={"panel": "any"})
    assert "24323-8" in [s.code for s in widened]


@pytest.mark.parametrize("name", ["CBC2", "MANUAL DIFFERENTIAL", "ABG (POC)", "UA-DIPSTICK", "ELECTROLYTE PRFL"])
def test_names_local_systems_give_panels_let_panels_compete(loinc_suggester, name):
    mask = loinc_suggester._query_mask(None, SourceItem("x", name))
    panels = [i for i, c in enumerate(loinc_suggester.terminology) if c.attributes.get("panel")]
    assert mask[panels].all()
    assert not loinc_suggester._query_mask(None, SourceItem("x", "Glucose SerPl"))[panels].any()


def test_a_word_only_the_tables_panels_use_asks_for_a_panel(loinc_suggester):
    panels = [i for i, c in enumerate(loinc_suggester.terminology) if c.attributes.get("panel")]
    # "comprehensive" is in no local panel list: the table's own panel names teach it
    assert loinc_suggester._query_mask(None, SourceItem("x", "COMPREHENSIVE METABOLIC"))[panels].all()
    assert not loinc_suggester._query_mask(None, SourceItem("x", "Glucose serum"))[panels].any()  # words all share


def test_lab_abbreviations_the_table_never_writes_are_spelt_out_in_queries():
    known = frozenset({"tot"})
    assert expand_unknown("Uric Acid (SMA)", known, LAB_ABBREVIATIONS) == "urate acid sma"
    assert expand_unknown("Tot Chol", known, LAB_ABBREVIATIONS) == "tot cholesterol"  # the table says "Tot"
    assert expand_unknown("Glucose Baseline", known, LAB_ABBREVIATIONS) == "Glucose Baseline"  # nothing to expand
    assert expand_unknown("TSH", known, LAB_ABBREVIATIONS) == "thyrotropin"  # LOINC's name for the analyte
    assert expand_unknown("TSH", frozenset({"tsh"}), LAB_ABBREVIATIONS) == "TSH"  # a table that says "TSH"
    assert expand_unknown("Final Org 2", known, LAB_ABBREVIATIONS) == "final organism 2"  # a culture's organism
    assert expand_unknown("Org Acids Ur", known, LAB_ABBREVIATIONS) == "organic acids ur"  # ... not an acid's
    assert expand_unknown("Collection Site (Bld Gas)", known, LAB_ABBREVIATIONS) == "specimen source bld gas"
    assert expand_unknown("Alk Phos (Tot)", known, LAB_ABBREVIATIONS) == "alkaline phosphatase tot"
    assert expand_unknown("Phos (CSH)", known, LAB_ABBREVIATIONS) == "Phos (CSH)"  # phosphate or phosphatase
    # vitamin D by both names LOINC gives it, so that "Vitamin" alone no longer pulls vitamin B12 ahead
    assert expand_unknown("VITAMIN D, 25-OH, TOTAL", known, LAB_ABBREVIATIONS) == "calcidiol 25 hydroxyvitamin d total"
    assert expand_unknown("25-OH Vit D", known, LAB_ABBREVIATIONS) == "calcidiol 25 hydroxyvitamin d"
    # the lipoprotein that carries the cholesterol, as LOINC words it
    assert expand_unknown("LDL-CHOLESTEROL", known, LAB_ABBREVIATIONS) == "cholesterol in ldl"
    assert expand_unknown("NON HDL CHOLESTEROL", known, LAB_ABBREVIATIONS) == "cholesterol non hdl"


def test_acids_read_as_the_anions_the_table_names():
    folded = ["lactate moles volume in serum or plasma", "nalidixic acid susceptibility"]
    anions, acids = table_acids({w for text in folded for w in text.split()}, folded)
    assert anions == {"lactate"} and acids == {"nalidixic"}
    assert acids_as_anions("Lactic Acid, Plasma", anions, acids) == "lactate plasma"
    assert (
        acids_as_anions("Nalidixic Acid MIC", anions | {"nalidixate"}, acids) == "Nalidixic Acid MIC"
    )  # the table's own acid
    assert acids_as_anions("Prostatic Acid Phosphatase", anions, acids) == "Prostatic Acid Phosphatase"  # no such anion
    assert acids_as_anions("Glucose", anions, acids) == "Glucose"


def test_a_reflex_clause_is_not_the_test_ordered(loinc_suggester):
    assert without_reflex("TSH W/REFLEX TO FT4") == "TSH"
    assert without_reflex("HEPATITIS B SURFACE ANTIGEN W/REFL CONFIRM") == "HEPATITIS B SURFACE ANTIGEN"
    assert without_reflex("Hep C Ab, with reflex to HCV RNA") == "Hep C Ab"
    assert without_reflex("Reflex testing") == "Reflex testing"  # no clause: the name itself
    assert loinc_suggester._query_texts([SourceItem("x", "Glu W/REFL TO A1C")]) == ["glucose"]


def test_a_bare_mnemonic_is_the_analyte(loinc_suggester):
    """ "K", "CA", "UA-PRO": a dictionary's whole name is one mnemonic. The table may write the letters
    in other names ("Ca-I", "CA Titr"), which a bare mnemonic matched instead of the analyte."""
    texts = loinc_suggester._query_texts(
        [SourceItem("x", name) for name in ("K", "CA", "UA-PRO", "NEUT%", "CA 125", "Glucose mg/dL")]
    )
    assert texts[:4] == ["potassium", "calcium", "ua protein", "neutrophils"]
    assert texts[4:] == ["CA 125", "Glucose mg/dL"]  # inside a longer name the letters stay as written
    # the analyte's form beside the mnemonic is no second analyte: "T3Free" is one word in LOINC's short
    # names, so "T3, FREE" matched "T4 Free" as well as the free T3 it asks for
    texts = loinc_suggester._query_texts([SourceItem("x", name) for name in ("CK, TOTAL", "T3, FREE", "T4 Total")])
    assert texts == ["creatine kinase total", "triiodothyronine free", "thyroxine total"]


def test_a_name_that_asks_for_the_specimen_source_is_that_question(loinc_suggester):
    """Dictionaries ask where the specimen came from under the test's name: the answer is LOINC's
    specimen source, and the test's name would only pull that test's codes ahead."""
    names = ("EBV Source", "Legionella Specimen Source", "B burgdorferi Src", "Body Fluid Source:")
    texts = loinc_suggester._query_texts([SourceItem("x", name) for name in (*names, "Source of infection")])
    assert texts[:3] == ["specimen source"] * 3
    assert texts[3] == "specimen source fluid"  # the specimen words stay: "Specimen source of Body fluid"
    assert texts[4] == "Source of infection"  # "source" not at the end: no such question


def test_one_analyte_in_two_specimens_is_a_ratio():
    ratio = concept_axes("Albumin in CSF/Albumin in Serum or Plasma", [], {})
    assert ratio.property == {"ratio"}
    assert concept_axes("Cholesterol in HDL [Mass/volume] in Serum or Plasma", [], {}).property == {"mcnc"}
    [(_, _, _, property_conflict)] = axis_features(source_axes("ALB", {"unit": "g/dL"}), [ratio])
    assert property_conflict == 1


def test_a_calculated_unit_states_the_method():
    assert source_axes("LDL-CHOLESTEROL", {"unit": "mg/dL (calc)"}).method == "calc"
    calculated = _axes_of("Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation")
    assert calculated.method == "calc"  # as LOINC's long names say it


def test_a_lab_dictionarys_acid_finds_loinc_anion(tiny_loinc, encoder, tmp_path):
    concepts = [
        *tiny_loinc.concepts,
        Concept("2524-7", "Lactate [Moles/volume] in Serum or Plasma", [], [], {"panel": False}),
    ]
    suggester = Suggester(Terminology("tiny-loinc", "loinc", "1", concepts), encoder, cache_dir=tmp_path)
    assert suggester._query_texts([SourceItem("x", "LACTIC ACID")]) == ["lactate"]
    [top] = suggester.suggest([SourceItem("x", "LACTIC ACID", {"fluid": "Plasma", "unit": "mmol/L"})], top_k=1)
    assert top[0].code == "2524-7"


def test_each_suggester_spells_out_its_own_abbreviations(loinc_suggester, tiny_icd, encoder, tmp_path):
    item = SourceItem("x", "Glu SerPl", {"unit": "mg/dL"})
    assert loinc_suggester._query_texts([item]) == ["glucose serpl"]
    icd = Suggester(Terminology("icd", "icd10cm", "1", tiny_icd.concepts), encoder, cache_dir=tmp_path)
    assert icd._query_texts([item]) == ["Glu SerPl"]  # lab words only for a LOINC-like table
    # clipped clinical words (learned from ICD-9-CM's short and long titles) for any other table
    assert icd._query_texts([SourceItem("x", "Crnry athrscl")]) == ["coronary atherosclerosis"]
    assert loinc_suggester._query_texts([SourceItem("x", "Crnry athrscl")]) == ["Crnry athrscl"]


def test_context_moves_the_ranking_only_through_axes(loinc_suggester):
    [blood] = loinc_suggester.suggest([SourceItem("x", "Glucose", {"fluid": "whole blood"})], top_k=2)
    [serum] = loinc_suggester.suggest([SourceItem("x", "Glucose", {"fluid": "Serum"})], top_k=2)
    assert blood[0].code == "2339-0" and serum[0].code == "2345-7"
    assert blood[0].evidence["matched_text"] == "Glucose [Mass/volume] in Blood"
    chemistry = SourceItem("x", "Glucose", {"fluid": "Blood", "category": "Chemistry", "unit": "mg/dL"})
    gas = SourceItem("x", "Glucose", {"fluid": "Blood", "category": "Blood Gas", "unit": "mg/dL"})
    [chemistry_top, gas_top] = loinc_suggester.suggest([chemistry, gas], top_k=2)
    assert chemistry_top[0].code == "2345-7" and gas_top[0].code == "2339-0"


def test_icd10cm_maps_to_billable_codes_by_default(tiny_icd, encoder, tmp_path):
    icd = Terminology("icd", "icd10cm", "1", tiny_icd.concepts)
    suggester = Suggester(icd, encoder, cache_dir=tmp_path)
    [default] = suggester.suggest([SourceItem("x", "Type 2 diabetes mellitus")], top_k=10)
    assert "E11" not in [s.code for s in default]
    [widened] = suggester.suggest([SourceItem("x", "Type 2 diabetes mellitus")], top_k=10, where={"billable": "any"})
    assert "E11" in [s.code for s in widened]
    [narrowed] = suggester.suggest([SourceItem("x", "Type 2 diabetes mellitus")], top_k=10, where={"billable": False})
    assert [s.code for s in narrowed] == ["E11"]


def test_a_weak_best_candidate_is_no_confident_match():
    weak = [Suggestion("A", "a", 0.31, 1, {}), Suggestion("B", "b", 0.2, 2, {})]
    strong = [Suggestion("A", "a", 0.93, 1, {})]
    assert no_confident_match(weak) and no_confident_match([])
    assert not no_confident_match(strong)
    assert weak[0].band == "low" and strong[0].band == "high" and NO_CONFIDENT_MATCH == "no confident match"
