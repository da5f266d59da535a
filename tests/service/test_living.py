"""Living mappings: terminology releases re-open what they change, source re-imports carry
decisions forward, approvals are reused across projects, dual mapping is blind and measured,
bulk actions are audited one item at a time."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from models.terminology import Concept, Terminology
from service import audit, crud, decisions
from service.living import terminology
from service.store.db import session_scope
from service.store.living import BlindChoice, DualAssignment, Reopening
from service.store.tables import AuditEvent, DecisionCreate, Role, SourceItem
from tests.service.conftest import LAB_CSV


def verified(service) -> list[str]:
    """Assert the audit chain and state still hold; the actions logged, in order."""
    with session_scope(service.engine) as session:
        result = audit.verify(session)
        assert result.ok, result.problems
        return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq))]


def approve(service, project: int, code: str, target: str | None = None, role=Role.mapper):
    body = {"action": "approve"} | ({"target_code": target} if target else {})
    response = service.decide(project, code, role, **body)
    assert response.status_code == 200, response.text
    return response.json()


# -- terminology releases ---------------------------------------------------------------------------
def next_release(old: Terminology) -> Terminology:
    """2.78: glucose 2345-7 replaced by 99999-1, sodium renamed, creatinine deleted, a new code."""
    concepts = []
    for c in old:
        if c.code == "2345-7":
            concepts.append(
                Concept(c.code, c.display, active=False, attributes={"invalid_reason": "U", "replaced_by": ["99999-1"]})
            )
        elif c.code == "2951-2":
            concepts.append(Concept(c.code, "Sodium [Moles/volume] in Serum, Plasma or Blood"))
        elif c.code != "2160-0":
            concepts.append(Concept(c.code, c.display))
    concepts.append(Concept("99999-1", "Glucose [Mass/volume] in Serum, Plasma or Blood"))
    return Terminology("loinc", "test", "2.78", concepts)


def test_a_new_release_reopens_exactly_the_mappings_whose_target_changed(service):
    project = service.ready_project()
    for code in ("GLU", "NA", "K"):
        assert approve(service, project, code)["terminology_version"] == "2.77"
    old = service.suggester.terminology
    new = next_release(old)
    with session_scope(service.engine) as session:
        release = terminology.register_release(session, new, old, "admin-1")
    assert release.counts == {"added": 1, "retired": 1, "replaced": 1, "renamed": 1}
    assert release.reopened == 2

    glu, na, k = (service.item(project, c) for c in ("GLU", "NA", "K"))
    assert (glu["status"], glu["target_code"], glu["terminology_version"]) == ("flagged", "2345-7", "2.77")
    assert (
        "2345-7 replaced" in glu["comment"]
        and "99999-1" in glu["comment"]
        and "approved against 2.77" in glu["comment"]
    )
    assert [s["code"] for s in glu["suggestions"]] == ["99999-1"]
    assert glu["model_version"] == "release:loinc@2.78"
    assert na["status"] == "flagged" and "renamed" in na["comment"]
    assert (k["status"], k["decided_by"], k["terminology_version"]) == ("approved", "mapper-1", "2.77")

    reopened = service.call("GET", f"/projects/{project}/reopenings", Role.viewer).json()
    assert {(r["source_code"], r["change_kind"], r["old_target_code"]) for r in reopened} == {
        ("GLU", "replaced", "2345-7"),
        ("NA", "renamed", "2951-2"),
    }
    listed = service.call("GET", "/terminology-releases", Role.viewer, params={"name": "loinc"}).json()
    detail = service.call(
        "GET", f"/terminology-releases/{listed[-1]['id']}", Role.viewer, params={"kind": "replaced"}
    ).json()
    assert [c["replacements"] for c in detail["changes"]] == [["99999-1"]] and len(detail["reopenings"]) == 2

    service.suggester.terminology = new  # the service now runs on 2.78: approving takes the replacement
    again = approve(service, project, "GLU")
    assert (again["status"], again["target_code"], again["terminology_version"]) == ("approved", "99999-1", "2.78")
    logged = verified(service)
    assert {"terminology.release", "reopening.create", "item.reopen"} <= set(logged)


def test_an_unapproved_item_is_not_reopened_and_nothing_is_dropped(sqlite_service):
    project = sqlite_service.ready_project()
    approve(sqlite_service, project, "K")
    old = sqlite_service.suggester.terminology
    with session_scope(sqlite_service.engine) as session:
        terminology.register_release(session, old, None, "admin-1")  # the baseline: nothing to compare
        release = terminology.register_release(session, next_release(old), old, "admin-1")
    assert release.reopened == 0 and release.previous_version == "2.77"
    assert sqlite_service.item(project, "GLU")["status"] == "suggested"  # suggested, never approved: untouched
    counts = crud.project_public
    with session_scope(sqlite_service.engine) as session:
        assert sum(counts(session, crud.get_project(session, project)).counts.values()) == 5
    verified(sqlite_service)


# -- source updates ---------------------------------------------------------------------------------
def fifty_codes(changed: set[int] = frozenset()) -> bytes:
    lines = ["source_code,source_text,frequency"]
    for n in range(50):
        text = f"Glucose serum sample {n}" if n not in changed else f"Glucose urine sample {n}"
        lines.append(f"L{n:02d},{text},{100 + n}")
    return ("\n".join(lines) + "\n").encode()


def _state(session, project_id: int) -> dict[str, dict]:
    items = session.exec(select(SourceItem).where(SourceItem.project_id == project_id))
    return {i.code: i.model_dump() for i in items}


def test_reimport_with_three_changed_texts_carries_47_decisions_forward(service):
    project = service.project()
    assert service.import_csv(project, fifty_codes()).json()["created"] == 50
    service.suggest(project)
    with session_scope(service.engine) as session:
        found = crud.get_project(session, project)
        for n in range(50):
            item = crud.get_item(session, found, f"L{n:02d}")
            decision = DecisionCreate(action="approve", relationship="source-is-narrower-than-target")
            decisions.decide(session, found, item.code, decision, "ana", item.version, service.suggester.terminology)
        before, seq_before = _state(session, project), len(list(session.exec(select(AuditEvent))))

    files = {"file": ("codes.csv", fifty_codes({3, 17, 41}), "text/csv")}
    response = service.call("POST", f"/projects/{project}/source-updates", Role.mapper, files=files)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["text_changed"] == ["L03", "L17", "L41"]
    assert (report["new"], report["removed"], report["frequency_changed"]) == ([], [], [])
    assert (report["carried_forward"], report["reopened"], report["unchanged"], report["resuggested"]) == (47, 3, 47, 3)

    with session_scope(service.engine) as session:
        after = _state(session, project)
        new_events = list(session.exec(select(AuditEvent).where(AuditEvent.seq > seq_before)))
    untouched = [c for c in before if c not in {"L03", "L17", "L41"}]
    assert len(untouched) == 47 and all(after[c] == before[c] for c in untouched)  # same version, approver, equivalence
    assert all(
        after[c]["relationship"] == "source-is-narrower-than-target" and after[c]["decided_by"] == "ana"
        for c in untouched
    )
    touched = {e.entity for e in new_events if e.entity.startswith("item:")}
    assert touched == {f"item:{before[c]['id']}" for c in ("L03", "L17", "L41")}
    for code in ("L03", "L17", "L41"):
        item = service.item(project, code)
        assert item["status"] == "flagged" and "source text changed" in item["comment"] and "urine" in item["text"]
        assert item["model_version"] == "fake-words@1" and item["suggestions"]
        assert after[code]["suggestion_batch_id"] != before[code]["suggestion_batch_id"]  # re-suggested
    assert {"source.update", "reopening.create", "item.reopen", "suggestions.generate"} <= set(verified(service))


def test_reimport_reports_new_removed_and_frequency_changes_and_keeps_decisions(sqlite_service):
    project = sqlite_service.ready_project()
    approve(sqlite_service, project, "GLU")
    changed = LAB_CSV.replace(b"GLU,Glucose serum,900", b"GLU,Glucose serum,950").replace(
        b"UA,Urinalysis dipstick,120,\n", b""
    )
    files = {"file": ("codes.csv", changed + b"CREAT,Creatinine serum,300,mg/dL\n", "text/csv")}
    report = sqlite_service.call(
        "POST", f"/projects/{project}/source-updates?resuggest=false", Role.mapper, files=files
    ).json()
    assert (report["new"], report["removed"], report["frequency_changed"], report["text_changed"]) == (
        ["CREAT"],
        ["UA"],
        ["GLU"],
        [],
    )
    assert report["carried_forward"] == 1 and report["resuggested"] == 0
    glu = sqlite_service.item(project, "GLU")
    assert (glu["status"], glu["frequency"], glu["decided_by"]) == ("approved", 950, "mapper-1")
    assert sqlite_service.item(project, "UA")["status"] == "suggested"  # removed from the file, kept in the store
    verified(sqlite_service)


# -- reuse ------------------------------------------------------------------------------------------
def test_an_approval_elsewhere_is_offered_with_provenance_and_taking_it_is_audited(service):
    first = service.ready_project()
    approve(service, first, "GLU")
    assert service.call("POST", f"/projects/{first}/releases", Role.reviewer, json={}).status_code == 201
    second = service.project(name="St Mary LIS lab, site 2")
    service.import_csv(second, LAB_CSV + b"GLUC,Glucose  serum,10,mg/dL\nGLUM,Glucose serum,10,mmol/L\n")

    offers = service.call("GET", f"/projects/{second}/items/GLU/reuse", Role.viewer).json()
    assert len(offers) == 1
    offer = offers[0]
    assert (offer["match"], offer["project_name"], offer["release"], offer["approved_by"]) == (
        "code",
        "St Mary LIS lab",
        1,
        "mapper-1",
    )
    assert offer["target_code"] == "2345-7" and offer["terminology_version"] == "2.77"
    text_offer = service.call("GET", f"/projects/{second}/items/GLUC/reuse", Role.viewer).json()
    assert [(o["match"], o["source_code"]) for o in text_offer] == [("text", "GLU")]
    assert service.call("GET", f"/projects/{second}/items/GLUM/reuse", Role.viewer).json() == []  # other unit: no offer

    version = service.item(second, "GLU")["version"]
    body = {"from_project": first, "from_code": "GLU"}
    taken = service.call(
        "POST", f"/projects/{second}/items/GLU/reuse", Role.mapper, json=body, headers={"If-Match": f'"{version}"'}
    )
    assert taken.status_code == 200, taken.text
    item = taken.json()
    assert (item["status"], item["target_code"], item["decided_by"]) == ("approved", "2345-7", "mapper-1")
    assert "reused from project 'St Mary LIS lab' code 'GLU' (release 1), approved by mapper-1" in item["comment"]
    stale = service.call(
        "POST", f"/projects/{second}/items/GLU/reuse", Role.mapper, json=body, headers={"If-Match": f'"{version}"'}
    )
    assert stale.status_code == 409
    bad = service.call(
        "POST",
        f"/projects/{second}/items/NA/reuse",
        Role.mapper,
        json=body | {"version": service.item(second, "NA")["version"]},
    )
    assert bad.status_code == 404 and "no approval" in bad.json()["detail"]
    assert "decision.reuse" in verified(service)


def test_reuse_in_a_four_eyes_project_still_needs_a_second_reviewer(sqlite_service):
    first = sqlite_service.ready_project()
    approve(sqlite_service, first, "NA")
    second = sqlite_service.project(four_eyes=True, name="site 2")
    sqlite_service.import_csv(second)
    body = {"from_project": first, "from_code": "NA", "version": sqlite_service.item(second, "NA")["version"]}
    item = sqlite_service.call("POST", f"/projects/{second}/items/NA/reuse", Role.mapper, json=body).json()
    assert (item["status"], item["proposed_status"]) == ("pending", "approved")


def test_a_second_site_lists_offers_and_takes_the_agreeing_ones_in_bulk(sqlite_service):
    svc = sqlite_service
    first = svc.ready_project()
    for code in ("GLU", "NA", "K"):
        approve(svc, first, code)
    third = svc.project(name="site 3")
    svc.import_csv(third)
    assert svc.decide(third, "K", action="remap", target_code="2160-0").status_code == 200  # a different opinion
    second = svc.project(name="site 2")
    svc.import_csv(second, LAB_CSV + b"GLUC,Glucose  serum,10,mg/dL\n")

    listed = svc.call("GET", f"/projects/{second}/reuse", Role.viewer).json()
    assert {i["source_code"]: [o["source_code"] for o in i["offers"]] for i in listed} == {
        "GLU": ["GLU"],
        "GLUC": ["GLU"],
        "K": ["K", "K"],
        "NA": ["NA"],
    }
    response = svc.call("POST", f"/projects/{second}/bulk/reuse", Role.reviewer, json={})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "matched": 6,
        "changed": 3,
        "skipped": {"no offer": 2, "offers disagree": 1},
        "model_version": None,
    }
    assert [svc.item(second, c)["status"] for c in ("GLU", "GLUC", "NA", "K")] == ["approved"] * 3 + ["new"]
    assert svc.call("POST", f"/projects/{second}/bulk/reuse", Role.mapper, json={}).status_code == 403
    assert verified(svc).count("decision.reuse") == 3


# -- dual independent mapping -----------------------------------------------------------------------
DUAL_CSV = b"source_code,source_text,frequency,domain\n" + b"".join(
    f"D{n:02d},Glucose sodium test {n},{100 - n},{'lab' if n <= 6 else 'vitals'}\n".encode() for n in range(1, 11)
)
X, Y, U = "2345-7", "2951-2", "unmappable"
# Hand-computed: 7 of 10 agree, p_o = 0.7; marginals A (X5 Y3 U2), B (X5 Y4 U1): p_e = (25+12+2)/100 = 0.39,
# kappa = 0.31/0.61 = 0.5082. Lab (D01-06): p_o = 5/6, p_e = (4*3+2*3)/36 = 0.5, kappa = 0.6667.
# Vitals (D07-10): p_o = 0.5, p_e = (1*2+1*1+2*1)/16 = 0.3125, kappa = 0.1875/0.6875 = 0.2727.
CHOICES_A = [X, X, X, X, Y, Y, Y, U, U, X]
CHOICES_B = [X, X, X, Y, Y, Y, X, U, Y, X]


def _choice(label: str) -> dict:
    return {"action": "unmappable"} if label == U else {"action": "remap", "target_code": label}


def test_dual_mapping_is_blind_then_measured_against_a_hand_computed_kappa(service):
    ben = service.make_token(Role.mapper, "ben")
    project = service.project()
    service.import_csv(project, DUAL_CSV)
    created = service.call("POST", f"/projects/{project}/dual", Role.reviewer, json={"mappers": ["mapper-1", "ben"]})
    assert created.status_code == 200 and len(created.json()) == 10

    url = f"/projects/{project}/dual/D01"
    assert service.call("POST", url + "/choices", Role.mapper, json=_choice(X)).status_code == 200
    assert service.call("GET", url, ben).json()["choices"] == []  # ben cannot see mapper-1's choice
    assert [c["mapper"] for c in service.call("GET", url, Role.mapper).json()["choices"]] == ["mapper-1"]
    assert service.call("GET", url, Role.reviewer).json()["choices"] == []
    assert service.call("GET", f"/projects/{project}/dual", ben).json()[0]["choices"] == []
    assert (
        service.call("POST", url + "/choices", Role.mapper, json=_choice(Y)).status_code == 409
    )  # one blind choice each
    assert service.call("POST", url + "/choices", Role.reviewer, json=_choice(Y)).status_code == 403  # not in the pair
    direct = service.decide(project, "D02", Role.mapper, action="remap", target_code=X)
    assert direct.status_code == 409 and "dual" in direct.json()["detail"]

    for n, (a, b) in enumerate(zip(CHOICES_A, CHOICES_B), start=1):
        code = f"D{n:02d}"
        if n > 1:
            assert (
                service.call(
                    "POST", f"/projects/{project}/dual/{code}/choices", Role.mapper, json=_choice(a)
                ).status_code
                == 200
            )
        assert service.call("POST", f"/projects/{project}/dual/{code}/choices", ben, json=_choice(b)).status_code == 200

    agreed = service.item(project, "D01")
    assert (agreed["status"], agreed["target_code"], agreed["decided_by"], agreed["confirmed_by"]) == (
        "approved",
        X,
        "mapper-1",
        "ben",
    )
    assert service.item(project, "D08")["status"] == "unmappable"
    assert service.item(project, "D04")["status"] == "new"  # a disagreement decides nothing

    report = service.call("GET", f"/projects/{project}/dual/agreement", Role.viewer).json()
    [pair] = report["pairs"]
    assert (pair["mappers"], pair["items"], pair["agreed"], pair["percent_agreement"]) == (
        ["ben", "mapper-1"],
        10,
        7,
        70.0,
    )
    assert pair["kappa"] == pytest.approx(0.31 / 0.61, abs=1e-4)
    domains = {d["domain"]: d for d in report["domains"]}
    assert domains["lab"]["kappa"] == pytest.approx(2 / 3, abs=1e-4)
    assert domains["vitals"]["kappa"] == pytest.approx(0.1875 / 0.6875, abs=1e-4)
    assert domains["vitals"]["percent_agreement"] == 50.0

    side_by_side = service.call("GET", f"/projects/{project}/dual?status=disagreed", Role.reviewer).json()
    assert [d["source_code"] for d in side_by_side] == ["D04", "D07", "D09"]
    assert {c["mapper"]: c["target_code"] for c in side_by_side[0]["choices"]} == {"mapper-1": X, "ben": Y}
    reconcile = f"/projects/{project}/dual/D04/reconciliation"
    assert (
        service.call("POST", reconcile, Role.mapper, json=_choice(Y)).status_code == 403
    )  # mapper-1 has no confirm right
    done = service.call("POST", reconcile, Role.reviewer, json=_choice(Y))
    assert done.status_code == 200 and done.json()["status"] == "reconciled"
    d04 = service.item(project, "D04")
    assert (d04["status"], d04["target_code"], d04["decided_by"]) == ("approved", Y, "reviewer-1")
    assert "mapper-1 chose 2345-7, ben chose 2951-2" in d04["comment"]
    assert service.call("POST", reconcile, Role.reviewer, json=_choice(Y)).status_code == 409
    logged = verified(service)
    assert {
        "dual.assign",
        "dual.choose",
        "dual.agree",
        "dual.disagree",
        "dual.reconcile",
        "decision.dual_agree",
        "decision.reconcile",
    } <= set(logged)


def test_a_reconciler_must_be_outside_the_pair(sqlite_service):
    project = sqlite_service.project()
    sqlite_service.import_csv(project, DUAL_CSV)
    body = {"mappers": ["reviewer-1", "mapper-1"], "filter": {"codes": ["D01"]}}
    assert len(sqlite_service.call("POST", f"/projects/{project}/dual", Role.reviewer, json=body).json()) == 1
    sqlite_service.call("POST", f"/projects/{project}/dual/D01/choices", Role.mapper, json=_choice(Y))

    def choices_in_the_log(role) -> list:
        events = sqlite_service.call("GET", "/audit/events", role, params={"project_id": project}).json()
        return [e["after"] for e in events if e["entity"].startswith("blind_choice:")]

    assert choices_in_the_log(Role.reviewer) == [
        {"withheld": "the other mapper's blind choice, until both have chosen"}
    ]
    assert choices_in_the_log(Role.admin)[0]["target_code"] == Y  # an auditor outside the pair sees it
    sqlite_service.call("POST", f"/projects/{project}/dual/D01/choices", Role.reviewer, json=_choice(X))
    assert [c["target_code"] for c in choices_in_the_log(Role.reviewer)] == [Y, X]  # settled: both visible
    response = sqlite_service.call(
        "POST", f"/projects/{project}/dual/D01/reconciliation", Role.reviewer, json=_choice(X)
    )
    assert response.status_code == 403 and "outside the pair" in response.json()["detail"]
    assert (
        sqlite_service.call(
            "POST", f"/projects/{project}/dual/D01/reconciliation", Role.admin, json=_choice(X)
        ).status_code
        == 200
    )
    bad = sqlite_service.call("POST", f"/projects/{project}/dual", Role.reviewer, json={"mappers": ["ana", "ana"]})
    assert bad.status_code == 422 and "two different mappers" in bad.json()["detail"]


def test_dual_assignment_by_frequency_threshold(sqlite_service):
    project = sqlite_service.project()
    sqlite_service.import_csv(project, DUAL_CSV)
    body = {"mappers": ["ana", "ben"], "filter": {"min_frequency": 95}}
    made = sqlite_service.call("POST", f"/projects/{project}/dual", Role.reviewer, json=body).json()
    assert [d["source_code"] for d in made] == ["D01", "D02", "D03", "D04", "D05"]
    with session_scope(sqlite_service.engine) as session:
        assert len(list(session.exec(select(DualAssignment)))) == 5
        assert list(session.exec(select(BlindChoice))) == []


# -- bulk actions -----------------------------------------------------------------------------------
def test_bulk_approve_reassign_and_resuggest_are_audited_per_item(service):
    project = service.ready_project()
    response = service.call("POST", f"/projects/{project}/bulk/approve", Role.reviewer, json={"min_score": 0.9})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["matched"], result["changed"], result["skipped"]) == (5, 4, {"below min_score": 1})
    assert service.item(project, "UA")["status"] == "suggested"
    glu = service.item(project, "GLU")
    assert (glu["status"], glu["decided_by"], glu["terminology_version"]) == ("approved", "reviewer-1", "2.77")
    assert "bulk approval: top suggestion score 1.000 >= 0.9" in glu["comment"]
    assert (
        service.call("POST", f"/projects/{project}/bulk/approve", Role.mapper, json={"min_score": 0.9}).status_code
        == 403
    )

    body = {"filter": {"statuses": ["suggested"]}, "assignee": "ben"}
    assert service.call("POST", f"/projects/{project}/bulk/reassign", Role.reviewer, json=body).json()["changed"] == 1
    assert service.call("POST", f"/projects/{project}/bulk/reassign", Role.reviewer, json=body).json()["changed"] == 0
    mine = {"filter": {"assignee": "ben"}, "assignee": "cleo"}
    assert service.call("POST", f"/projects/{project}/bulk/reassign", Role.reviewer, json=mine).json()["changed"] == 1

    service.suggester.model_version = "fake-words@2"
    again = service.call(
        "POST",
        f"/projects/{project}/bulk/resuggest",
        Role.mapper,
        json={"filter": {"not_model_version": "fake-words@2"}},
    )
    assert again.json() == {"matched": 5, "changed": 5, "skipped": {}, "model_version": "fake-words@2"}
    assert service.item(project, "UA")["model_version"] == "fake-words@2"
    assert service.item(project, "GLU")["status"] == "approved"  # new suggestions never undo a decision
    none_left = service.call(
        "POST",
        f"/projects/{project}/bulk/resuggest",
        Role.mapper,
        json={"filter": {"not_model_version": "fake-words@2"}},
    )
    assert none_left.json()["matched"] == 0
    logged = verified(service)
    assert logged.count("decision.approve") == 4 and logged.count("assignment.set") == 2


def test_bulk_approve_in_a_four_eyes_project_proposes(sqlite_service):
    project = sqlite_service.ready_project(four_eyes=True)
    body = {"min_score": 0.5, "filter": {"codes": ["GLU", "NA"]}}
    assert (
        sqlite_service.call("POST", f"/projects/{project}/bulk/approve", Role.reviewer, json=body).json()["changed"]
        == 2
    )
    assert sqlite_service.item(project, "GLU")["status"] == "pending"
    unknown = sqlite_service.call(
        "POST",
        f"/projects/{project}/bulk/approve",
        Role.reviewer,
        json={"min_score": 0.5, "filter": {"codes": ["NOPE"]}},
    )
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]


def test_reopenings_are_rows_of_their_own(sqlite_service):
    project = sqlite_service.ready_project()
    approve(sqlite_service, project, "GLU")
    old = sqlite_service.suggester.terminology
    with session_scope(sqlite_service.engine) as session:
        terminology.register_release(session, next_release(old), old, "admin-1")
        rows = list(session.exec(select(Reopening)))
    assert [(r.cause, r.change_kind, r.approved_version) for r in rows] == [("terminology", "replaced", "2.77")]
    assert json.loads(json.dumps(rows[0].replacements)) == ["99999-1"]


# -- migration --------------------------------------------------------------------------------------
def test_rows_stored_before_0004_and_0008_still_verify_after_the_upgrade(sqlite_url):
    """0004 adds source_item.terminology_version and 0008 project.archived; a `<kind>.migrate` event per
    existing row records the new column."""
    from sqlalchemy import text

    from service.store.db import engine_for, upgrade
    from service.store.tables import Project

    engine = engine_for(sqlite_url)
    upgrade(engine, "0001")
    with session_scope(engine) as session:  # what a service before 0004 wrote: rows and events without the columns
        session.execute(
            text(
                "INSERT INTO project (id, name, source_system, source_uri, target_terminology, four_eyes, "
                "target_filter, created_at, created_by, version) "
                "VALUES (1, 'old', 'lis', 'urn:x', 'loinc', 0, '{}', '2026-01-01T00:00:00.000000Z', 'old', 1)"
            )
        )
        session.execute(
            text(
                "INSERT INTO source_item (id, project_id, code, text, context, status, version) "
                "VALUES (1, 1, 'GLU', 'Glucose', '{}', 'new', 1)"
            )
        )
        project = Project(
            id=1,
            name="old",
            source_system="lis",
            source_uri="urn:x",
            target_terminology="loinc",
            four_eyes=False,
            target_filter={},
            created_at="2026-01-01T00:00:00.000000Z",
            created_by="old",
            version=1,
        )
        row = SourceItem(id=1, project_id=1, code="GLU", text="Glucose", context={}, status="new", version=1)
        for old_row, new_column, action in (
            (project, "archived", "project.create"),
            (row, "terminology_version", "item.import"),
        ):
            before = {k: v for k, v in old_row.model_dump(mode="json").items() if k != new_column}
            audit._append(session, "old-service", action, old_row, None, before, None)
    upgrade(engine)
    with session_scope(engine) as session:
        assert audit.verify(session).ok
        migrated = {
            e.entity: json.loads(e.after) for e in session.exec(select(AuditEvent)) if e.action.endswith(".migrate")
        }
        assert migrated["item:1"]["terminology_version"] is None and migrated["project:1"]["archived"] is False
    upgrade(engine)  # idempotent: nothing more to record
    with session_scope(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent))]
        assert actions.count("item.migrate") == 1 and actions.count("project.migrate") == 1


def test_feeds_stored_before_the_dask_scheduler_column_still_verify_after_the_upgrade(sqlite_url):
    """The 0008 feed migrations add feed columns (dask_scheduler, fields_project_id, ...); `feed.migrate` events
    record them for existing feeds."""
    from sqlalchemy import text

    from service.store.db import engine_for, upgrade
    from service.store.feeds import Feed, FeedBatch

    engine = engine_for(sqlite_url)
    upgrade(engine, "0003_monitoring")
    values = dict(
        id=1,
        name="labs",
        description=None,
        mapping_project_id=None,
        mapped_columns=[],
        contract={},
        reference_filename="ref.csv",
        reference_file="feeds/1/ref.csv",
        reference_sha256="0" * 64,
        reference_rows=3,
        reference_profile="feeds/1/ref.profile",
        reference_profile_sha256="0" * 64,
        created_at="2026-01-01T00:00:00.000000Z",
        created_by="old",
        version=1,
    )
    with session_scope(engine) as session:  # what a service before the column wrote
        session.execute(
            text(
                "INSERT INTO feed (id, name, mapped_columns, contract, reference_filename, reference_file, "
                "reference_sha256, reference_rows, reference_profile, reference_profile_sha256, created_at, "
                "created_by, version) VALUES (1, 'labs', '[]', '{}', 'ref.csv', 'feeds/1/ref.csv', :h, 3, "
                "'feeds/1/ref.profile', :h, '2026-01-01T00:00:00.000000Z', 'old', 1)"
            ),
            {"h": "0" * 64},
        )
        session.execute(  # a batch refers to the feed: the upgrade must not copy-and-drop the feed table
            text(
                "INSERT INTO feed_batch (id, feed_id, number, filename, sha256, rows, received_at, received_by, "
                "profile_file, profile_sha256, summary, alerts) VALUES (1, 1, 1, 'b.csv', :h, 3, "
                "'2026-01-02T00:00:00.000000Z', 'old', 'feeds/1/b.profile', :h, '{}', '[]')"
            ),
            {"h": "0" * 64},
        )
        old_row = Feed(**values)
        before = {k: v for k, v in old_row.model_dump(mode="json").items() if k != "dask_scheduler"}
        audit._append(session, "old-service", "feed.create", old_row, None, before, None)
        batch = FeedBatch(
            id=1,
            feed_id=1,
            number=1,
            filename="b.csv",
            sha256="0" * 64,
            rows=3,
            received_at="2026-01-02T00:00:00.000000Z",
            received_by="old",
            profile_file="feeds/1/b.profile",
            profile_sha256="0" * 64,
        )
        audit._append(session, "old-service", "feed_batch.create", batch, None, batch.model_dump(mode="json"), None)
    upgrade(engine)
    with session_scope(engine) as session:
        assert audit.verify(session).ok
        migrated = [json.loads(e.after) for e in session.exec(select(AuditEvent)) if e.action == "feed.migrate"]
        last = migrated[-1]
        assert (last["dask_scheduler"], last["fields_project_id"], last["field_roles"]) == (None, None, {})
