"""End to end in headless Chromium for a field project: the queue of source columns, a column's value
profile beside its candidate target fields, an approval, the decision in the queue, and the released
mapping specification holding it.

Needs Debian's /usr/bin/chromium and the playwright package, as test_ui_e2e.py (skips without them
unless CROSSWALK_REQUIRE_E2E=1). The field suggester runs on the test encoder, not MiniLM.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.store.tables import Role
from tests.fields.conftest import serving_fields
from tests.service.conftest import Service
from tests.ui.conftest import live_server

pytestmark = pytest.mark.e2e
LABEVENTS = b"itemid,valuenum,valueuom\n50912,1.1,mg/dL\n50971,4.2,mEq/L\n50912,0.9,mg/dL\n"
PATIENTS = b"subject_id,gender,dob\n1,F,2050-01-01\n2,M,2061-03-04\n"
COLUMN = "labevents.valueuom"


@pytest.fixture
def field_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder) -> Iterator[tuple[Service, int]]:
    """A field project on OMOP CDM 5.4 whose two tables came in over the API, with suggestions."""
    with serving_fields(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, monkeypatch, encoder) as running:
        body = {"name": "Clinic ETL", "source_system": "Clinic EHR extract", "target_terminology": "omop-cdm-5.4"}
        project = running.call("POST", "/projects", Role.mapper, json=body).json()["id"]
        files = [("files", ("labevents.csv", LABEVENTS, "text/csv")), ("files", ("patients.csv", PATIENTS, "text/csv"))]
        imported = running.call("POST", f"/projects/{project}/source-schema", Role.mapper, files=files)
        assert imported.status_code == 200, imported.text
        running.suggest(project)
        yield running, project


def test_review_a_field_and_release_its_mapping_spec_in_a_browser(browser, field_service):
    svc, project = field_service
    with live_server(svc.app) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page = context.new_page()
        page.goto(f"{base}/ui/projects/{project}")
        page.locator("#token").fill(svc.tokens[Role.reviewer])
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{base}/ui/projects/{project}"

        with page.expect_navigation():
            page.locator("table.queue a", has_text=COLUMN).click()
        assert page.locator("#item-title code").inner_text() == COLUMN
        profile = page.locator("dl.context div", has=page.get_by_text("profile", exact=True)).locator("dd")
        assert "unit" in profile.inner_text() and "mg/dL" in profile.inner_text()  # the values, beside...
        candidates = page.locator("ol.candidates .cand-title code").all_inner_texts()
        assert len(candidates) == 3 and all(c.count(".") == 1 for c in candidates)  # ...the target fields
        chosen = candidates[1]
        page.locator("#relationship").select_option("equivalent")
        with page.expect_navigation():
            page.locator(f'button[value="pick:{chosen}"]').click()

        page.goto(f"{base}/ui/projects/{project}?status=approved")
        row = page.locator("table.queue tr", has=page.locator("a", has_text=COLUMN))
        assert "approved" in row.inner_text() and chosen in row.locator("td.decision").inner_text()

        page.goto(f"{base}/ui/projects/{project}/releases")
        page.get_by_label("Note").fill("first field mappings")
        with page.expect_navigation():
            page.get_by_role("button", name="Create release").click()
        with page.expect_download() as download:
            page.get_by_role("link", name="Field mapping specification CSV").click()
        rows = list(csv.DictReader(Path(download.value.path()).open(encoding="utf-8")))
        context.close()

    table, column = chosen.split(".")
    released = [r for r in rows if (r["source_table"], r["source_column"]) == ("labevents", "valueuom")]
    assert len(released) == 1 and (released[0]["target_table"], released[0]["target_column"]) == (table, column)
    assert released[0]["relationship"] == "equivalent" and len(rows) == 1  # nothing undecided was released
