"""End to end in headless Chromium: log in, review ten items with the keyboard alone, create a
release, download its ConceptMap, acknowledge an alert as ops; then the store and the audit chain
hold exactly those actions.

Needs Debian's /usr/bin/chromium and the playwright package (never `playwright install`): without
them these tests skip, unless CROSSWALK_REQUIRE_E2E=1, which makes a missing browser a failure.
Screenshots at 1280x800 of what it sees are kept in the test's temporary folder; the README's come from
the real model (`python docs/screenshots.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import audit, crud
from service.store.db import session_scope
from service.store.feeds import FeedAlert
from service.store.tables import AuditEvent, Role
from tests.ui.conftest import live_server

pytestmark = pytest.mark.e2e
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def live(seeded) -> Iterator[str]:
    """The seeded service's app under uvicorn on 127.0.0.1 (as `crosswalk serve`), on a free port."""
    with live_server(seeded[0].app) as base:
        yield base


def _seed_release_1(service, project: int) -> None:
    """Before the browser: release 1 with two approvals, then one of them remapped (a 'changed' row)."""
    for code in ("GLU", "NA"):
        assert service.decide(project, code, action="approve").status_code == 200
    assert (
        service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={"note": "seed"}).status_code == 201
    )
    assert (
        service.decide(project, "NA", action="remap", target_code="2823-3", relationship="related-to").status_code
        == 200
    )


def _last_seq(service) -> int:
    with session_scope(service.engine) as session:
        return max((e.seq for e in audit.history(session)), default=0)


def _shown(page) -> str:
    return page.locator("#item-title code").inner_text()


def _press(page, key: str) -> None:
    """A key that submits a form or follows a link: wait for the next page."""
    with page.expect_navigation():
        page.keyboard.press(key)


def _wait_for_focus(page, selector: str) -> None:
    page.wait_for_function(
        "selector => document.activeElement && document.activeElement.matches(selector)", arg=selector
    )


def _candidate(page, number: int) -> str:
    return page.locator(f'button[data-key="{number}"]').get_attribute("value").removeprefix("pick:")


def _login(page, base: str, token: str, path: str) -> None:
    page.goto(base + path)
    assert "/ui/login" in page.url
    _wait_for_focus(page, "#token")  # autofocus lands a moment after the load event
    page.keyboard.type(token)
    _press(page, "Enter")
    assert page.url == base + path


def _review_ten(page, shots: Path) -> list[tuple[str, str, dict]]:
    """Ten decisions and one skip, keys only; returns (action, code, expected item fields) in order."""
    done: list[tuple[str, str, dict]] = []
    code = _shown(page)
    _press(page, "a")
    done.append(("approve", code, {"status": "approved", "relationship": "equivalent"}))
    page.screenshot(path=str(shots / "item.png"))
    code, second = _shown(page), _candidate(page, 2)
    _press(page, "2")
    done.append(("approve", code, {"status": "approved", "target_code": second}))
    code = _shown(page)
    page.keyboard.press("<")  # relationship: source narrower than target, no page load
    _press(page, "a")
    done.append(("approve", code, {"status": "approved", "relationship": "source-is-narrower-than-target"}))
    for key, status, action in (
        ("r", "rejected", "reject"),
        ("f", "flagged", "flag"),
        ("u", "unmappable", "unmappable"),
    ):
        code = _shown(page)
        _press(page, key)
        done.append((action, code, {"status": status}))
    skipped = _shown(page)
    _press(page, "n")  # skip one: it stays undecided, the queue moves past it
    done.append(("skip", skipped, {"status": "suggested"}))
    return done + _undo_search_comment(page)


def _undo_search_comment(page) -> list[tuple[str, str, dict]]:
    done: list[tuple[str, str, dict]] = []
    code = _shown(page)
    _press(page, "a")
    _press(page, "z")  # undo: the same item is back, undecided
    assert _shown(page) == code and "Undid the last decision" in page.locator(".notice").inner_text()
    page.keyboard.press("t")  # cycle: equivalent -> narrower
    third = _candidate(page, 3)
    _press(page, "3")
    done += [
        ("approve", code, {}),
        ("revert", code, {}),
        (
            "approve",
            code,
            {"status": "approved", "target_code": third, "relationship": "source-is-narrower-than-target"},
        ),
    ]
    code = _shown(page)
    page.keyboard.press("/")
    page.keyboard.type("creatinine")
    _press(page, "Enter")  # search; the first Remap button takes the focus
    _wait_for_focus(page, 'button[value^="remap:"]')
    _press(page, "Enter")
    done.append(("remap", code, {"status": "approved", "target_code": "2160-0"}))
    code = _shown(page)
    page.keyboard.press("m")
    page.keyboard.type("checked with the lab")
    page.keyboard.press("Escape")
    _press(page, "a")
    done.append(("approve", code, {"status": "approved", "comment": "checked with the lab"}))
    code = _shown(page)
    page.keyboard.press("=")
    _press(page, "1")
    done.append(("approve", code, {"status": "approved", "relationship": "equivalent"}))
    return done


def test_review_release_and_download_in_a_browser(browser, live, seeded, tmp_path):
    ui_service, project = seeded
    _seed_release_1(ui_service, project)
    seed_seq = _last_seq(ui_service)
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    _login(page, live, ui_service.tokens[Role.reviewer], f"/ui/projects/{project}")
    page.screenshot(path=str(tmp_path / "queue.png"))
    _press(page, "s")  # start reviewing
    done = _review_ten(page, tmp_path)
    decided = {code for action, code, _ in done if action != "skip"}
    assert len(decided) == 10

    page.goto(f"{live}/ui/projects/{project}/releases")
    page.get_by_label("Note").fill("browser review")
    with page.expect_navigation():
        page.get_by_role("button", name="Create release").click()
    assert page.url.endswith(f"/ui/projects/{project}/releases/2")
    page.screenshot(path=str(tmp_path / "release-diff.png"), full_page=False)
    with page.expect_download() as download:
        page.get_by_role("link", name="FHIR ConceptMap R4").click()
    conceptmap = json.loads(Path(download.value.path()).read_text())
    acknowledged = _acknowledge_as_ops(page, live, ui_service.tokens[Role.ops], tmp_path)
    context.close()

    _assert_store(ui_service, project, seed_seq, done, conceptmap, acknowledged)


def _acknowledge_as_ops(page, base: str, token: str, shots: Path) -> str:
    """Sign out, sign in as ops, drill into the critical alert, acknowledge it; returns its uid."""
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    _login(page, base, token, "/ui/ops")
    page.screenshot(path=str(shots / "ops.png"))
    link = page.locator("table.alerts tr", has=page.locator(".sev-critical")).first.locator("td a")
    with page.expect_navigation():
        link.click()
    uid = page.url.rsplit("/", 1)[1]
    page.frame_locator("iframe.report").locator("body").wait_for()  # the Evidently report loads in its sandbox
    page.screenshot(path=str(shots / "ops-alert.png"))
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge alert").click()
    assert "acknowledged" in page.locator("dl.context").inner_text()
    return uid


def _assert_store(service, project: int, seed_seq: int, done, conceptmap: dict, acknowledged: str) -> None:
    expected_events = [(f"decision.{action}", code) for action, code, _ in done if action != "skip"]
    with session_scope(service.engine) as session:
        events = [e for e in session.exec(_after(seed_seq))]
        decisions = [(e.action, _code_of(session, e)) for e in events if e.action.startswith("decision.")]
        assert decisions == expected_events
        review = [(e.action, e.actor) for e in events if e.action.startswith(("claim.", "comment."))]
        assert ("claim.take", "reviewer-1") in review and ("comment.add", "reviewer-1") in review  # leases, the thread
        # Signing in and out opens and ends audited sessions; apart from those nothing else was written.
        routine = ("decision.", "claim.", "comment.", "session.")
        others = [(e.action, e.actor) for e in events if not e.action.startswith(routine)]
        assert others == [("release.create", "reviewer-1"), ("alert.acknowledge", "ops-1")]  # nothing else was written
        ack = session.get(FeedAlert, int(events[-1].entity.split(":")[1]))
        assert (ack.uid, ack.status, ack.acknowledged_by, ack.severity) == (
            acknowledged,
            "acknowledged",
            "ops-1",
            "critical",
        )
        p = crud.get_project(session, project)
        for action, code, fields in done:
            item = crud.get_item(session, p, code)
            assert {k: getattr(item, k) for k in fields} == fields, (action, code)
        assert audit.verify(session).ok
        released = {e.source_code: e.target_code for e in crud_releases_entries(session, p, 2)}
    elements = [el for group in conceptmap["group"] for el in group["element"]]
    mapped = {
        el["code"]: el["target"][0]["code"] for el in elements if el.get("target") and el["target"][0].get("code")
    }
    assert conceptmap["resourceType"] == "ConceptMap"
    assert {el["code"] for el in elements} == set(released)  # unmappable ones too, without a target code
    assert {c: t for c, t in released.items() if t} == mapped


def _after(seq: int):
    from sqlmodel import select

    return select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)


def _code_of(session, event: AuditEvent) -> str:
    from service.store.tables import SourceItem

    return session.get(SourceItem, int(event.entity.split(":")[1])).code


def crud_releases_entries(session, project, number: int):
    from service import crud_releases

    return crud_releases.entries_of(session, crud_releases.get_release(session, project, number))


LONG_TEXT = "Glucose serum " + "fasting sample drawn before breakfast and kept on ice; " * 24
NARROW = {"width": 800, "height": 600}


def _on_screen(page, selector: str) -> bool:
    return page.evaluate(
        """selector => { const box = document.querySelector(selector).getBoundingClientRect();
                         return box.top >= 0 && box.bottom <= window.innerHeight; }""",
        selector,
    )


def _events_of(service, project: int, code: str) -> list[str]:
    with session_scope(service.engine) as session:
        item = crud.get_item(session, crud.get_project(session, project), code)
        return [
            e.action for e in audit.history(session, entity=audit.entity_of(item)) if e.action.startswith("decision.")
        ]


def test_keys_never_decide_while_typing_blind_or_when_switched_off(browser, live, seeded):
    """At 800 px with a long source text: Enter in the comment box decides nothing, `a` refuses a candidate 1
    that is off screen (and scrolls it into view), and the shortcuts can be switched off, remembered."""
    ui_service, project = seeded
    assert ui_service.import_csv(project, f"source_code,source_text\nGLU,{LONG_TEXT}\n".encode()).status_code == 200
    context = browser.new_context(viewport=NARROW)
    page = context.new_page()
    _login(page, live, ui_service.tokens[Role.reviewer], f"/ui/projects/{project}/review?code=GLU&status=all")
    first = "ol.candidates .candidate:first-child .cand-title"
    assert _on_screen(page, first)  # the long text is cut to three lines; the candidates stay in view

    page.keyboard.press("m")
    page.keyboard.type("a1 checked")
    page.keyboard.press("Enter")  # implicit submission: must not approve candidate 1
    page.keyboard.press("Escape")
    assert page.locator("#comment").input_value() == "a1 checked" and _shown(page) == "GLU"
    _press(page, "f")  # a deliberate decision: GLU is flagged, with the comment
    assert _events_of(ui_service, project, "GLU") == ["decision.flag"]

    page.goto(f"{live}/ui/projects/{project}/review?code=GLU&status=all")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert not _on_screen(page, first)
    page.keyboard.press("a")  # refused: candidate 1 is scrolled into view and the key asked for again
    page.locator("#key-message").wait_for(state="visible")
    assert "press a again" in page.locator("#key-message").inner_text() and _on_screen(page, first)
    _press(page, "a")
    assert _events_of(ui_service, project, "GLU") == ["decision.flag", "decision.approve"]

    code = _shown(page)
    page.locator("#keys-on").uncheck()
    page.keyboard.press("Escape")
    page.keyboard.press("f")  # shortcuts off: nothing happens
    with page.expect_navigation():
        page.reload()
    assert not page.locator("#keys-on").is_checked() and "keys-off" in page.locator("body").get_attribute("class")
    page.keyboard.press("f")
    page.locator("#keys-on").check()
    page.keyboard.press("Escape")
    _press(page, "f")
    context.close()
    assert _events_of(ui_service, project, code) == ["decision.flag"]
