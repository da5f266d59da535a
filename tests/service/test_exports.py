"""The export registry and what each format needs from the catalog, on plain release bundles (no store)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from models.catalog import Catalog
from service.exports import FORMATS, ReleaseBundle, export
from service.exports.formats import UnknownFormat
from service.exports.targets import MissingOmopConcepts
from service.store.tables import EntryPublic, Project, Release

OMOP_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "terminologies" / "omop"


def bundle(target_terminology: str, *entries: EntryPublic) -> ReleaseBundle:
    project = Project(
        id=7,
        name="conditions",
        source_system="Clinic problem list",
        target_terminology=target_terminology,
        created_by="t",
    )
    release = Release(
        id=1, project_id=7, number=1, entry_count=len(entries), created_by="t", created_at="2026-01-02T03:04:05Z"
    )
    return ReleaseBundle(project, release, list(entries))


def entry(code: str, target: str | None, status: str = "approved") -> EntryPublic:
    return EntryPublic(
        source_code=code, source_text=f"text of {code}", status=status, target_code=target, relationship="equivalent"
    )


def test_every_format_is_listed_once_with_what_it_writes():
    assert list(FORMATS) == ["fhir-r4", "fhir-r5", "sssom", "omop", "usagi", "mapping-spec", "mapping-spec-md"]
    assert {name for name, f in FORMATS.items() if f.needs_omop_concepts} == {"omop", "usagi"}
    with pytest.raises(UnknownFormat, match="unknown export format 'xls'; one of fhir-r4, fhir-r5, sssom, omop, usagi"):
        export(bundle("loinc"), "xls")


def test_an_omop_target_exports_its_concept_ids_and_their_vocabulary(tmp_path):
    """A project mapping to an OMOP vocabulary under any name: concept ids are its codes, vocabularies its own."""
    catalog = Catalog(tmp_path)
    catalog.add("omop", OMOP_SAMPLE, "problem-targets")
    released = bundle("problem-targets", entry("DM2", "201826"), entry("X", None, status="unmappable"))
    rows = {r["source_code"]: r for r in csv.DictReader(io.StringIO(export(released, "omop", catalog).content))}
    assert (rows["DM2"]["target_concept_id"], rows["DM2"]["target_vocabulary_id"]) == ("201826", "SNOMED")
    assert (rows["X"]["target_concept_id"], rows["X"]["target_vocabulary_id"]) == ("0", "None")
    fhir = export(released, "fhir-r4", catalog).content
    assert '"target": "https://fhir-terminology.ohdsi.org"' in fhir


def test_a_target_missing_from_the_omop_target_is_refused(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.add("omop", OMOP_SAMPLE, "problem-targets")
    with pytest.raises(
        MissingOmopConcepts, match="1 OMOP standardized vocabularies code.s. are not in problem-targets: 999"
    ):
        export(bundle("problem-targets", entry("DM2", "999")), "usagi", catalog)


def test_without_a_catalog_omop_formats_are_refused_and_the_rest_guess_from_the_name():
    released = bundle("loinc", entry("GLU", "2345-7"))
    with pytest.raises(MissingOmopConcepts, match="no OMOP vocabulary is loaded"):
        export(released, "omop")
    assert "http://loinc.org" in export(released, "fhir-r5").content
