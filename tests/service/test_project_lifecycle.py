"""A project's end: deleted while it was never released, archived (read-only, hidden) once it was; both
audited, on SQLite and PostgreSQL, with the hash chain still verifying afterwards."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from service import audit, claims, crud
from service.store.db import session_scope
from service.store.review import ItemComment, ReviewClaim
from service.store.tables import AuditEvent, Project, Role, SourceItem, Suggestion
from tests.service.conftest import crosswalk


def counts(service, *tables) -> list[int]:
    with session_scope(service.engine) as session:
        return [session.exec(select(func.count()).select_from(table)).one() for table in tables]


def test_an_unreleased_project_is_deleted_with_all_its_rows_and_the_chain_verifies(service):
    project = service.ready_project()
    other = service.project(name="Other lab")  # untouched by the deletion
    assert service.import_csv(other).status_code == 200
    assert service.decide(project, "GLU", action="approve").status_code == 200
    assert service.decide(project, "NA", action="flag", comment="check the unit").status_code == 200
    comment = service.call("POST", f"/projects/{project}/items/K/comments", Role.mapper, json={"text": "ask the lab"})
    assert comment.status_code in (200, 201)
    with session_scope(service.engine) as session:
        item = crud.get_item(session, crud.get_project(session, project), "UA")
        claims.claim(session, item, "reviewer-1")
    before = counts(service, SourceItem, Suggestion, ItemComment, ReviewClaim)

    refused = service.call("DELETE", f"/projects/{project}", Role.reviewer)
    assert refused.status_code == 403
    deleted = service.call("DELETE", f"/projects/{project}", Role.admin)
    assert deleted.status_code == 200, deleted.text
    removed = deleted.json()["removed"]
    assert removed["items"] == 5 and removed["decisions"] == 2 and removed["suggestions"] == 15
    assert removed["comments"] == 2 and removed["claims"] == 1

    assert counts(service, SourceItem, Suggestion, ItemComment, ReviewClaim) == [
        before[0] - 5,
        before[1] - 15,
        before[2] - 2,
        before[3] - 1,
    ]
    assert service.call("GET", f"/projects/{project}", Role.viewer).status_code == 404
    assert [p["id"] for p in service.call("GET", "/projects", Role.viewer).json()] == [other]
    verified = service.call("GET", "/audit/verify", Role.admin).json()
    assert verified["ok"] is True, verified["problems"]
    with session_scope(service.engine) as session:
        last = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert (last.action, last.actor, last.entity, last.after) == (
        "project.delete",
        "admin-1",
        f"project:{project}",
        None,
    )
    assert '"removed":' in last.before and '"items":5' in last.before

    # the name is free again, and the new project starts empty
    again = service.project()
    assert again != project and service.call("GET", f"/projects/{again}", Role.viewer).json()["counts"] == {}


def test_a_released_project_is_refused_and_archived_instead(service):
    project = service.ready_project()
    assert service.decide(project, "GLU", action="approve").status_code == 200
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    refused = service.call("DELETE", f"/projects/{project}", Role.admin)
    assert refused.status_code == 409 and "archive it instead" in refused.json()["detail"]
    assert counts(service, SourceItem) == [5]

    assert service.call("POST", f"/projects/{project}/archive", Role.reviewer).status_code == 403
    archived = service.call("POST", f"/projects/{project}/archive", Role.admin)
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert service.call("GET", "/projects", Role.viewer).json() == []
    listed = service.call("GET", "/projects?archived=true", Role.viewer).json()
    assert [p["id"] for p in listed] == [project]

    # read-only: decisions, comments, imports and suggestions are refused with a clear message...
    for response in (
        service.decide(project, "NA", action="approve"),
        service.call("POST", f"/projects/{project}/items/NA/comments", Role.mapper, json={"text": "x"}),
        service.import_csv(project),
        service.call("POST", f"/projects/{project}/suggestions", Role.mapper, json={"top_k": 3}),
    ):
        assert response.status_code == 409, response.text
        assert "is archived and read-only" in response.json()["detail"]
    # ...while its items, releases and exports stay readable
    assert service.item(project, "GLU")["status"] == "approved"
    assert service.call("GET", f"/projects/{project}/releases/1", Role.viewer).status_code == 200
    export = service.call("GET", f"/projects/{project}/releases/1/export?format=fhir-r4", Role.viewer)
    assert export.status_code == 200 and "2345-7" in export.text

    assert service.call("POST", f"/projects/{project}/unarchive", Role.admin).json()["archived"] is False
    assert service.decide(project, "NA", action="approve").status_code == 200
    verified = service.call("GET", "/audit/verify", Role.admin).json()
    assert verified["ok"] is True, verified["problems"]
    actions = [e["action"] for e in service.call("GET", "/audit/events", Role.admin).json()]
    assert {"project.archive", "project.unarchive"} <= set(actions)


def test_a_deletion_that_fails_half_way_leaves_everything_as_it_was(sqlite_service, monkeypatch):
    project = sqlite_service.ready_project()
    assert sqlite_service.decide(project, "GLU", action="approve").status_code == 200
    before = counts(sqlite_service, Project, SourceItem, Suggestion, AuditEvent)
    real_remove = audit.remove

    def fail_at_the_project(session, actor, action, row, removed=None):
        if isinstance(row, Project):  # every item, batch and suggestion is gone by now
            raise RuntimeError("the store went away")
        return real_remove(session, actor, action, row, removed)

    monkeypatch.setattr(audit, "remove", fail_at_the_project)
    with pytest.raises(RuntimeError), session_scope(sqlite_service.engine) as session:
        crud.delete_project(session, crud.get_project(session, project), "admin")
    assert counts(sqlite_service, Project, SourceItem, Suggestion, AuditEvent) == before
    assert sqlite_service.call("GET", "/audit/verify", Role.admin).json()["ok"] is True


def test_cli_delete_needs_yes_or_the_typed_name_and_archive_hides(env, suggester, monkeypatch, capsys):
    suggester.terminology.save(env / "terminologies" / "loinc.jsonl.gz")
    assert (
        crosswalk(
            monkeypatch, capsys, "project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc"
        )[0]
        == 0
    )
    code, _, err = crosswalk(monkeypatch, capsys, "project", "delete", "-p", "Lab")
    assert code == 2 and "needs --yes" in err and err.count("\n") == 1
    code, out, _ = crosswalk(monkeypatch, capsys, "project", "delete", "-p", "Lab", "--yes")
    assert code == 0 and "Lab deleted" in out
    assert crosswalk(monkeypatch, capsys, "audit", "verify")[0] == 0

    assert (
        crosswalk(
            monkeypatch, capsys, "project", "create", "--name", "Lab", "--source-system", "LIS", "--target", "loinc"
        )[0]
        == 0
    )
    code, out, _ = crosswalk(monkeypatch, capsys, "project", "archive", "-p", "Lab")
    assert code == 0 and "archived" in out
    assert "Lab" not in crosswalk(monkeypatch, capsys, "project", "list")[1]
    assert "Lab (archived)" in crosswalk(monkeypatch, capsys, "project", "list", "--archived")[1]
    data = env / "codes.csv"
    data.write_text("source_code,source_text\nGLU,Glucose\n")
    code, _, err = crosswalk(monkeypatch, capsys, "project", "import", "-p", "Lab", str(data))
    assert code == 2 and "is archived and read-only" in err
    assert crosswalk(monkeypatch, capsys, "project", "unarchive", "-p", "Lab")[0] == 0
    assert crosswalk(monkeypatch, capsys, "project", "import", "-p", "Lab", str(data))[0] == 0
    assert crosswalk(monkeypatch, capsys, "audit", "verify")[0] == 0


def test_deleting_a_project_unlinks_its_feeds_and_keeps_the_messages_its_items_came_from(service):
    from service.store.feeds import Feed
    from service.store.messages import ItemMessage, StoredMessage
    from tests.conftest import SAMPLES

    project = service.project()
    for path in sorted((SAMPLES / "hl7v2").glob("*.hl7")):  # as the README imports them: 8 local codes
        files = {"file": (path.name, path.read_bytes(), "x-application/hl7-v2+er7")}
        assert (
            service.call("POST", f"/projects/{project}/imports?format=hl7v2", Role.mapper, files=files).status_code
            == 200
        )
    reference = b"lab_code,result\nGLU,5.1\nNA,140\n"
    form = {"name": "labs", "mapping_project_id": str(project)}
    feed = service.call("POST", "/feeds", Role.ops, data=form, files={"file": ("r.csv", reference, "text/csv")})
    assert feed.status_code == 201, feed.text
    links, messages = counts(service, ItemMessage, StoredMessage)
    assert links > 0 and messages == 11

    removed = service.call("DELETE", f"/projects/{project}", Role.admin).json()["removed"]
    assert removed["message_links"] == links and removed["feeds_unlinked"] == 1
    assert counts(service, ItemMessage, StoredMessage) == [0, 11]
    with session_scope(service.engine) as session:
        assert session.exec(select(Feed)).one().mapping_project_id is None
    verified = service.call("GET", "/audit/verify", Role.admin).json()
    assert verified["ok"] is True, verified["problems"]
