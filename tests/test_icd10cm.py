"""The built-in ICD-10-CM terminology and the catalog that keeps it."""

from __future__ import annotations

import pytest

from models.catalog import Catalog, UnknownTerminology
from models.terminology import Terminology


@pytest.fixture(scope="module")
def icd10cm(tmp_path_factory) -> Terminology:
    root = tmp_path_factory.mktemp("catalog")
    stale = Terminology("icd10cm", "icd10cm", "2026 (simple-icd-10-cm 1.5.0)", [])
    stale.save(root / "icd10cm.jsonl.gz")  # an older loader's copy: must be rebuilt, not served
    return Catalog(root).get("icd10cm")


@pytest.mark.slow
def test_icd10cm_is_the_real_2026_release(icd10cm):
    assert len(icd10cm) > 95_000
    assert sum(1 for c in icd10cm if c.attributes["billable"]) > 74_000
    assert "crosswalk loader" in icd10cm.version
    diabetes = icd10cm.get("E11.9")
    assert diabetes.display == "Type 2 diabetes mellitus without complications"
    assert diabetes.parents == ["E11"] and diabetes.attributes["billable"] is True
    assert diabetes.attributes["block"] == "E08-E13"
    assert icd10cm.get("E11").attributes["billable"] is False
    assert "diabetes NOS" in icd10cm.get("E11").synonyms  # inclusion terms are synonyms
    assert icd10cm.get("E08-E13") is None  # blocks are attributes, not concepts


@pytest.mark.slow
def test_nonessential_modifiers_give_a_bare_synonym(icd10cm):
    hypertension = icd10cm.get("I10")
    assert "hypertension (arterial) (benign) (essential) (malignant) (primary) (systemic)" in hypertension.synonyms
    assert "hypertension" in hypertension.synonyms
    assert "Essential hypertension" in hypertension.synonyms


def test_catalog_names_what_it_has(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.names() == ["icd10cm"]
    [entry] = catalog.entries()
    assert entry.built_in and entry.concepts == 0  # listed without parsing 10 MB of XML
    with pytest.raises(UnknownTerminology, match="unknown terminology 'loinc'; available: icd10cm"):
        catalog.get("loinc")
    with pytest.raises(ValueError, match="built-in"):
        catalog.add("fhir", tmp_path / "x.json", "icd10cm")
