"""Feeds on a Dask cluster through the API: a feed's cluster set, checked, audited and shown; a large upload
profiled on the cluster (a threaded LocalCluster) with the in-memory path's alerts; the store slot handed
back while the cluster works; an unreachable scheduler a one-line 503 with nothing stored."""

from __future__ import annotations

import threading

import pytest

import service.cluster
from service.monitoring import feeds as crud_feeds
from service.store.tables import Role
from tests.service import test_feeds
from tests.service.test_feeds import Feeds, csv_bytes, unit_switch

halves = test_feeds.halves  # the fixture: two halves of one sample, so a clean batch is quiet


def _to_cluster_from(service, min_bytes: int) -> None:
    """Uploads of `min_bytes` and more go to the feed's cluster (the default, 256 MiB, is past the API's limit)."""
    service.app.state.settings = service.settings.model_copy(update={"dask_min_bytes": min_bytes})


def _incoming(service) -> list:
    return list(service.settings.home.rglob("incoming-*"))


def test_feed_cluster_is_set_checked_audited_and_shown(sqlite_service, halves):
    feeds = Feeds(sqlite_service)
    reference, _ = halves
    created = feeds.create(csv_bytes(reference), dask_scheduler="local:2")
    assert created["dask_scheduler"] == "local:2"
    shown = feeds.call("GET", f"/feeds/{created['id']}", Role.viewer).json()
    assert shown["dask_scheduler"] == "local:2"
    [event] = feeds.call("GET", "/audit/events", Role.admin, params={"entity": f"feed:{created['id']}"}).json()
    assert event["action"] == "feed.create" and event["after"]["dask_scheduler"] == "local:2"
    assert feeds.create(csv_bytes(reference), name="plain")["dask_scheduler"] is None

    refused = feeds.call(
        "POST", "/feeds", data={"name": "bad", "dask_scheduler": "nowhere"}, files={"file": ("r.csv", b"a\n1\n")}
    )
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert (
        refused.json()["detail"]
        == "dask_scheduler: Value error, dask address 'nowhere': expected tcp://HOST:PORT or local:N"
    )
    assert [f["name"] for f in feeds.call("GET", "/feeds", Role.viewer).json()] == ["labs", "plain"]


def test_large_upload_is_profiled_on_the_feeds_cluster_with_the_in_memory_alerts(service, halves, dask_in_threads):
    feeds = Feeds(service)
    reference, current = halves
    memory = feeds.create(csv_bytes(reference), name="memory")
    dask = feeds.create(csv_bytes(reference), name="dask", dask_scheduler="local:2")
    batch = csv_bytes(unit_switch(current))
    _to_cluster_from(service, len(batch))

    expected = feeds.post(memory["id"], batch)  # no cluster for this feed: in memory, whatever the size
    got = feeds.post(dask["id"], batch)
    assert expected["has_report"] is True and expected["report_note"] is None
    assert got["has_report"] is False and "scored on Dask" in got["report_note"]
    assert got["rows"] == expected["rows"] == len(current) and got["filename"] == "batch.csv"
    keys = ("event", "check", "column", "segment", "severity", "message")
    assert [[a[k] for k in keys] for a in got["alerts"]] == [[a[k] for k in keys] for a in expected["alerts"]]
    assert [a["statistic"] for a in got["alerts"]] == pytest.approx([a["statistic"] for a in expected["alerts"]])
    assert got["summary"] == expected["summary"] and expected["summary"]["alerts"]["critical"] == 1
    assert feeds.alerts(dask["id"])["total"] == 1

    smaller = feeds.post(dask["id"], csv_bytes(current)[: len(batch) // 2])  # under the threshold: in memory
    assert smaller["has_report"] is True
    assert _incoming(service) == []
    feeds.verify_audit()


def test_the_store_slot_is_free_while_the_cluster_profiles(sqlite_service, halves, monkeypatch):
    """SQLite has one store slot: a request profiling on the cluster while holding it would stall every other."""
    feeds = Feeds(sqlite_service)
    reference, current = halves
    feed = feeds.create(csv_bytes(reference), dask_scheduler="tcp://scheduler:8786")
    _to_cluster_from(sqlite_service, 1)
    profiling, done = threading.Event(), threading.Event()

    def slow_cluster(contract, pattern, scheduler):
        profiling.set()
        assert done.wait(60), "the other request never finished"
        return crud_feeds.ProfiledBatch("batch.csv", "0" * 64, _profile(reference, contract), feed["contract"])

    monkeypatch.setattr(crud_feeds, "profile_files", slow_cluster)
    feed["contract"] = feeds.call("GET", f"/feeds/{feed['id']}/contract", Role.viewer).json()
    answers: dict[str, int] = {}
    with sqlite_service.client:  # one event loop for both requests, as in a server
        poster = threading.Thread(
            target=lambda: answers.update(
                post=feeds.call(
                    "POST", f"/feeds/{feed['id']}/batches", files={"file": ("b.csv", csv_bytes(current))}
                ).status_code
            )
        )
        poster.start()
        assert profiling.wait(60)
        answers["get"] = feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).status_code
        done.set()
        poster.join()
    assert answers == {"get": 200, "post": 201}
    assert feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()["batches"] == 1


def _profile(frame, contract):
    from monitors.profile import profile_frame
    from monitors.rules import PlausibilityRules

    return profile_frame(frame, contract, "site", PlausibilityRules())


def test_unreachable_scheduler_is_a_one_line_503_and_nothing_is_stored(sqlite_service, halves, monkeypatch):
    monkeypatch.setattr(service.cluster, "CONNECT_TIMEOUT", "0.5s")
    feeds = Feeds(sqlite_service)
    reference, current = halves
    feed = feeds.create(csv_bytes(reference), dask_scheduler="tcp://127.0.0.1:9")
    _to_cluster_from(sqlite_service, 1)
    events = feeds.audit_count()

    answer = feeds.call("POST", f"/feeds/{feed['id']}/batches", files={"file": ("b.csv", csv_bytes(current))})
    assert answer.status_code == 503 and answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert detail.startswith("dask scheduler tcp://127.0.0.1:9: unreachable") and "\n" not in detail
    assert feeds.call("GET", f"/feeds/{feed['id']}", Role.viewer).json()["batches"] == 0
    assert feeds.audit_count() == events and _incoming(sqlite_service) == []


def test_a_batch_profiled_under_an_edited_contract_is_refused(sqlite_service, halves):
    """The cluster profiles with no store lock held: a contract edited meanwhile makes the profile stale."""
    from monitors.contract import Contract
    from service.store.db import session_scope
    from service.store.errors import Conflict

    feeds = Feeds(sqlite_service)
    reference, _ = halves
    feed = feeds.create(csv_bytes(reference))
    contract = feeds.call("GET", f"/feeds/{feed['id']}/contract", Role.viewer).json()
    profile = _profile(reference, Contract.from_dict(contract))
    older = {**contract, "segment_columns": []}
    with session_scope(sqlite_service.engine) as session:
        found = crud_feeds.get_feed(session, feed["id"])
        stale = crud_feeds.ProfiledBatch("b.csv", "0" * 64, profile, older)
        with pytest.raises(Conflict, match="contract changed while the batch was profiled"):
            crud_feeds.post_batch(session, sqlite_service.settings.home, found, stale, "t")
        current = crud_feeds.ProfiledBatch("b.csv", "0" * 64, profile, contract)
        assert crud_feeds.post_batch(session, sqlite_service.settings.home, found, current, "t")[0].number == 1
