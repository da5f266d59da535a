"""models.release_diff on hand-made releases, and OMOP releases that name their successors."""

from __future__ import annotations

from pathlib import Path

from models.loaders import load_terminology
from models.release_diff import ChangeKind, diff_releases
from models.terminology import Concept, Terminology

HEADER = (
    "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\tconcept_code\t"
    "valid_start_date\tvalid_end_date\tinvalid_reason\n"
)
RELATIONSHIP_HEADER = "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"


def concept(ident: str, name: str, standard: str = "S", invalid: str = "") -> str:
    return (
        f"{ident}\t{name}\tCondition\tSNOMED\tClinical Finding\t{standard}\t{ident}0\t20020131\t20991231\t{invalid}\n"
    )


def release(folder: Path, version: str, concepts: list[str], relationships: list[str] = ()) -> Path:
    folder.mkdir(parents=True)
    (folder / "CONCEPT.csv").write_text(HEADER + "".join(concepts), encoding="utf-8")
    (folder / "CONCEPT_RELATIONSHIP.csv").write_text(RELATIONSHIP_HEADER + "".join(relationships), encoding="utf-8")
    (folder / "VOCABULARY.csv").write_text(
        f"vocabulary_id\tvocabulary_name\tvocabulary_reference\tvocabulary_version\tvocabulary_concept_id\nNone\tOMOP\tx\t{version}\t0\n",
        encoding="utf-8",
    )
    return folder


def test_omop_upgraded_and_deleted_concepts_name_their_successors(tmp_path: Path):
    old = load_terminology(
        "omop",
        release(
            tmp_path / "v1",
            "v5 2024",
            [
                concept("1", "Diabetes mellitus"),
                concept("2", "Prediabetes"),
                concept("3", "Old finding"),
                concept("4", "Hypertension"),
                concept("5", "Asthma"),
            ],
        ),
        "omop",
    )
    new = load_terminology(
        "omop",
        release(
            tmp_path / "v2",
            "v5 2025",
            [
                concept("1", "Diabetes mellitus"),
                concept("2", "Prediabetes", standard="", invalid="U"),
                concept("3", "Old finding", standard="", invalid="D"),
                concept("4", "Hypertensive disorder"),
                concept("5", "Asthma"),
                concept("6", "Prediabetes (finding)"),
            ],
            [
                "2\t6\tConcept replaced by\t20250101\t20991231\t\n",
                "2\t1\tMaps to\t20250101\t20991231\t\n",
                "3\t5\tMaps to\t20020101\t20250101\tD\n",  # an invalid relationship names nothing
            ],
        ),
        "omop",
    )
    assert new.get("2").attributes["replaced_by"] == ["6", "1"]
    diff = diff_releases(old, new)
    assert (diff.old_version, diff.new_version) == ("v5 2024", "v5 2025")
    changes = {c.code: c for c in diff.changes}
    assert (changes["2"].kind, changes["2"].replacements, changes["2"].detail) == (
        ChangeKind.replaced,
        ("6", "1"),
        "inactive (U)",
    )
    assert (changes["3"].kind, changes["3"].replacements) == (ChangeKind.retired, ())
    assert (changes["4"].kind, changes["4"].new_display) == (ChangeKind.renamed, "Hypertensive disorder")
    assert changes["6"].kind == ChangeKind.added
    assert "1" not in changes and "5" not in changes
    assert diff.counts() == {"added": 1, "retired": 1, "replaced": 1, "renamed": 1}


def test_whitespace_and_case_are_not_a_rename_and_a_reactivated_code_is_added():
    old = Terminology("t", "test", "1", [Concept("A", "Blood  glucose"), Concept("B", "Gone", active=False)])
    new = Terminology("t", "test", "2", [Concept("A", "blood glucose"), Concept("B", "Back")])
    assert [(c.code, c.kind) for c in diff_releases(old, new).changes] == [("B", ChangeKind.added)]


def test_an_expanded_code_is_replaced_by_its_new_subcodes_only():
    old = Terminology(
        "icd",
        "test",
        "2024",
        [
            Concept("X1.0", "Thing", attributes={"billable": True}),
            Concept("X1.1", "Other", attributes={"billable": True}),
        ],
    )
    new = Terminology(
        "icd",
        "test",
        "2026",
        [
            Concept("X1.0", "Thing", attributes={"billable": False}),
            Concept("X1.00", "Thing, left", parents=["X1.0"], attributes={"billable": True}),
            Concept("X1.01", "Thing, right", parents=["X1.0"], attributes={"billable": True}),
            Concept("X1.1", "Other", attributes={"billable": True}),
        ],
    )
    [gone] = [c for c in diff_releases(old, new).changes if c.code == "X1.0"]
    assert gone.kind == ChangeKind.replaced and gone.replacements == ("X1.00", "X1.01")
    assert gone.detail == "no longer billable: now a category with 2 billable subcodes"
