"""The audit log: a hash chain over every change, and current state that must match it.

Tampering is done the way an insider would: raw SQL on the database, behind the service's back.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from service import audit
from service.cli import app as cli
from service.store.db import session_scope
from service.store.tables import Role


def verify(service):
    with session_scope(service.engine) as session:
        return audit.verify(session)


def tamper(service, sql: str, **params) -> None:
    with service.engine.begin() as connection:
        assert connection.execute(text(sql), params).rowcount == 1


@pytest.fixture
def reviewed(service):
    """A project with suggestions, one approval and a release: a chain of ~20 events."""
    project = service.ready_project()
    assert service.decide(project, "GLU", action="approve").status_code == 200
    assert service.decide(project, "UA", action="reject").status_code == 200
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    return project


def test_every_change_is_one_chained_event(service, reviewed):
    with session_scope(service.engine) as session:
        events = audit.history(session)
    actions = [e.action for e in events]
    assert actions.count("token.create") == len(Role)
    assert actions.count("item.import") == 5 and actions.count("item.suggest") == 5
    assert {"project.create", "suggestions.generate", "decision.approve", "decision.reject", "release.create"} <= set(
        actions
    )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.model_version == "fake-words@1" for e in events if e.action.startswith(("item.suggest", "decision.")))
    assert verify(service).ok


def test_direct_status_update_is_detected(service, reviewed):
    """An UPDATE of a mapping's status in SQL breaks the match with its latest event."""
    tamper(service, "UPDATE source_item SET status = 'approved' WHERE code = 'UA'")
    result = verify(service)
    assert not result.ok
    last_ua_event = max(e.seq for e in _events(service) if e.action == "decision.reject")
    assert result.first_bad_seq == last_ua_event
    assert "changed directly" in result.problems[0]


def test_altered_event_is_detected(service, reviewed):
    tamper(service, "UPDATE audit_event SET actor = 'someone-else' WHERE action = 'decision.approve'")
    result = verify(service)
    seq = next(e.seq for e in _events(service) if e.action == "decision.approve")
    assert not result.ok and result.first_bad_seq == seq
    assert "hash mismatch" in result.problems[0]


def test_deleted_event_is_detected(service, reviewed):
    tamper(service, "DELETE FROM audit_event WHERE seq = 10")
    result = verify(service)
    assert not result.ok and result.first_bad_seq == 10
    assert "missing" in result.problems[0]


def test_deleting_the_last_event_is_detected(service, reviewed):
    """The release event is the tail: without it, the release row has no event any more."""
    tamper(service, "DELETE FROM audit_event WHERE action = 'release.create'")
    result = verify(service)
    assert not result.ok
    assert any("release:" in p and "no audit event" in p for p in result.problems)


def test_release_entries_edited_in_place_are_detected(service, reviewed):
    tamper(service, "UPDATE release_entry SET target_code = '2160-0' WHERE source_code = 'GLU'")
    result = verify(service)
    assert not result.ok and any("release:1" in p for p in result.problems)


def test_a_token_granted_admin_in_sql_is_detected(service, reviewed):
    tamper(service, "UPDATE api_token SET role = 'admin' WHERE name = 'viewer-1'")
    assert any("token:" in p for p in verify(service).problems)


def test_cli_verify_exit_status_and_first_bad_event(service, reviewed):
    runner = CliRunner()
    intact = runner.invoke(cli, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    tamper(service, "UPDATE source_item SET target_code = '2160-0' WHERE code = 'GLU'")
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "first bad event: #" in broken.output


def test_item_history_via_api_and_cli(service, reviewed):
    history = service.call("GET", f"/projects/{reviewed}/items/GLU/history", Role.viewer).json()
    assert [e["action"] for e in history] == ["item.import", "item.suggest", "decision.approve"]
    assert history[-1]["after"]["status"] == "approved" and history[-1]["actor"] == "mapper-1"
    result = CliRunner().invoke(cli, ["audit", "log", "--project", str(reviewed), "--item", "GLU"])
    assert result.exit_code == 0, result.output
    assert "decision.approve" in result.output and "mapper-1" in result.output
    assert "item.import" in result.output and "UA" not in result.output


def test_api_verify_needs_the_audit_permission(service, reviewed):
    assert service.call("GET", "/audit/verify", Role.ops).json()["ok"] is True
    assert service.call("GET", "/audit/verify", Role.mapper).status_code == 403


def _events(service):
    with session_scope(service.engine) as session:
        return audit.history(session)
