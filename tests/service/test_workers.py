"""The service on several workers (`crosswalk serve --workers N`): work that must happen once is claimed
through the store, not assumed to run in one process. Two delivery processes post each webhook message
once; a promotion reaches a worker that did not make it; two workers cutting one feed's waiting messages
make one batch; and `serve` refuses several workers on SQLite."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, text
from sqlmodel import Session, select

from monitors.alerts import Alert, AlertEvent
from monitors.webhooks import DELIVERY_HEADER
from service import audit, retraining
from service import engine as serving
from service.monitoring import feeds as crud_feeds
from service.monitoring import outbox
from service.monitoring.messages import EngineStore, pending, prepare, score_pending
from service.settings import Settings
from service.store.db import engine_for, session_scope, upgrade
from service.store.feeds import Feed, FeedBatch, WebhookCreate, WebhookDelivery
from service.store.jobs import WEBHOOK_DELIVERY, JobClaims
from service.store.messages import StoredMessage
from service.web.app import create_app
from tests.service.conftest import WEBHOOK_SECRET, crosswalk, postgres_url
from tests.service.hl7_feed import lab_messages, make_feed
from tests.webhook_receiver import AnsweringReceiver
from training import tracking


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_url()


# -- serve --workers --------------------------------------------------------------------------------
def test_serve_refuses_several_workers_on_sqlite_in_one_line(env, monkeypatch, capsys):
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("started on SQLite"))
    code, _, err = crosswalk(monkeypatch, capsys, "serve", "--workers", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--workers 2" in err and "SQLite" in err and "PostgreSQL" in err and "Traceback" not in err


def test_serve_starts_each_worker_from_the_same_options(env, monkeypatch, capsys):
    """uvicorn starts the worker processes; each builds the app from the options serve handed down."""
    from service.cli import serve as serve_module

    monkeypatch.setenv("CROSSWALK_DATABASE_URL", "postgresql+psycopg://etl@db.example/crosswalk")
    monkeypatch.setattr("service.store.db.upgrade", lambda engine: None)
    monkeypatch.setattr("service.web.app.load_serving_models", lambda app: {"bench": "bench-words@1"})
    started = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: started.update(app=app, **kwargs))
    code, _, err = crosswalk(
        monkeypatch, capsys, "serve", "--workers", "3", "--suggester-factory", "benchmarks.api:bench_suggester_factory"
    )
    assert code == 0 and "3 workers" in err
    assert started["app"] == "service.cli.serve:worker_app" and started["factory"] and started["workers"] == 3
    worker = serve_module.worker_app()  # as uvicorn calls it in a worker process
    assert worker.state.suggester_factory("bench").model_version == "bench-words@1"
    with TestClient(worker) as client:
        assert client.get("/health").status_code == 200


# -- webhooks: each message posted once, whoever delivers ------------------------------------------
class CountingReceiver(AnsweringReceiver):
    """A slow webhook receiver on 127.0.0.1 that counts the deliveries it got, by delivery id."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        lock = threading.Lock()

        def respond(handler) -> None:
            time.sleep(0.02)  # slow enough that the two deliverers overlap
            with lock:
                self.deliveries[handler.headers[DELIVERY_HEADER]] += 1
            handler.send_response(204)
            handler.end_headers()

        super().__init__(respond)


def _queue_messages(engine, home: Path, url: str, hooks: int, events: int) -> None:
    feed, _ = make_feed(engine, home)
    alerts = [
        Alert(feed.name, "*", "completeness", f"column_{i}", "warning", 0.5, 0.1, "missing", id=f"a{i}")
        for i in range(events)
    ]
    with session_scope(engine) as session:
        for i in range(hooks):
            hook = WebhookCreate(url=f"{url}/hook{i}", secret=WEBHOOK_SECRET)
            crud_feeds.add_webhook(session, home, feed, hook, "tester")
        outbox.queue_events(session, feed, [AlertEvent("opened", a) for a in alerts], "tester")


def _deliver_in_own_process(url: str, home: str, start) -> None:
    """One deliverer, as each service worker's background thread runs it, in a process of its own."""
    engine = engine_for(url)
    start.wait(timeout=120)  # both processes are up: they deliver at the same time
    outbox.deliver(engine, Path(home))


@pytest.mark.postgres
def test_two_delivery_processes_post_each_message_exactly_once(pg_url, tmp_path, local_webhooks):
    engine = engine_for(pg_url)
    upgrade(engine)
    receiver = CountingReceiver()
    try:
        _queue_messages(engine, tmp_path, receiver.url, hooks=3, events=8)
        spawn = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the store
        start = spawn.Barrier(2)
        workers = [spawn.Process(target=_deliver_in_own_process, args=(pg_url, str(tmp_path), start)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=180)
    finally:
        receiver.close()
    assert [w.exitcode for w in workers] == [0, 0]
    with session_scope(engine) as session:
        rows = session.exec(select(WebhookDelivery)).all()
        assert audit.verify(session).ok
    assert len(rows) == 24 and {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
    assert receiver.deliveries == Counter({str(r.id): 1 for r in rows})  # every message, each once


def test_a_deliverer_skips_a_message_another_one_holds(db_url, tmp_path, local_webhooks):
    engine = engine_for(db_url)
    upgrade(engine)
    receiver = CountingReceiver()
    try:
        _queue_messages(engine, tmp_path, receiver.url, hooks=1, events=2)
        with session_scope(engine) as session:
            held, free = session.exec(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).all()
        with JobClaims(engine, WEBHOOK_DELIVERY) as other:  # a deliverer posting `held` now
            assert other.take(held)
            outbox.deliver(engine, tmp_path)
            assert dict(receiver.deliveries) == {str(free): 1}
        outbox.deliver(engine, tmp_path)  # released: the next round posts it
    finally:
        receiver.close()
    assert dict(receiver.deliveries) == {str(free): 1, str(held): 1}


# -- a promotion reaches every worker --------------------------------------------------------------
class FakeRegistry:
    """Just enough of the MLflow registry for `retraining.promote`: a challenger that passes the gate."""

    def __init__(self, terminology: str) -> None:
        self.name = tracking.registered_name(terminology)
        self.aliases = {tracking.CHALLENGER: "2"}
        scores = {"acc@1": 0.9, "ece": 0.02}
        metrics = {tracking.metric_name(k): v for k, v in scores.items()}
        metrics |= {"champion_" + tracking.metric_name(k): v - 0.1 if k == "acc@1" else v for k, v in scores.items()}
        self._run = SimpleNamespace(data=SimpleNamespace(metrics=metrics, params={}, tags={}))
        self._run.data.tags["crosswalk.compared_with"] = "bundled"

    def alias(self, name: str, alias: str):
        version = self.aliases.get(alias)
        aliases = [a for a, v in self.aliases.items() if v == version]
        return None if version is None else SimpleNamespace(name=name, version=version, run_id="run-2", aliases=aliases)

    def run(self, run_id: str):
        return self._run

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias)

    def serving(self) -> str:
        champion = self.alias(self.name, tracking.CHAMPION)
        return "bundled" if champion is None else tracking.model_uri(self.name, champion.version)


def test_a_promotion_reaches_a_worker_that_did_not_make_it(db_url, tmp_path, monkeypatch):
    registry = FakeRegistry("loinc")
    built = lambda settings, name, progress=False: SimpleNamespace(model_version=registry.serving())  # noqa: E731
    monkeypatch.setattr(serving, "build_suggester", built)
    monkeypatch.setattr(serving, "PROMOTION_CHECK_S", 0.0)  # check the store on every request
    engine = engine_for(db_url)
    upgrade(engine)
    workers = []
    for _ in range(2):
        serving.served_suggesters.cache_clear()  # each worker process builds its own models
        workers.append(create_app(Settings(home=tmp_path, database_url=db_url)).state.suggester_factory)
    serving.served_suggesters.cache_clear()
    assert [served("loinc").model_version for served in workers] == ["bundled", "bundled"]

    with session_scope(engine) as session:  # `crosswalk models promote`, anywhere
        _, decision = retraining.promote(session, registry, "loinc", "ml-lead")
    assert decision.promote
    promoted = "models:/crosswalk-loinc/2"
    for served in workers:
        deadline = time.monotonic() + 60  # a bound on the background reload, not a timing
        while served("loinc").model_version != promoted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served("loinc").model_version == promoted


# -- a feed's waiting messages are cut into one batch --------------------------------------------
@pytest.mark.postgres
def test_two_workers_cutting_the_same_waiting_messages_make_one_batch(pg_url, tmp_path):
    engine = engine_for(pg_url)
    upgrade(engine)
    feed, _ = make_feed(engine, tmp_path)
    store = EngineStore(engine, feed, origin="http")
    for message in lab_messages(12):
        store(message.encode())
    with session_scope(engine) as session:
        prepared = prepare(feed, pending(session, feed, 100))  # both workers read the same waiting messages

    first = Session(engine, expire_on_commit=False)  # scored, not yet committed, when the second starts
    assert score_pending(first, tmp_path, first.get(Feed, feed.id), "worker-1", prepared=prepared) is not None
    second: dict = {}

    def cut_in_second_worker() -> None:
        with session_scope(engine) as session:
            second["pid"] = session.connection().execute(text("SELECT pg_backend_pid()")).scalar()
            second["outcome"] = score_pending(
                session, tmp_path, session.get(Feed, feed.id), "worker-2", prepared=prepared
            )

    thread = threading.Thread(target=cut_in_second_worker)
    thread.start()
    _wait_until_waiting_for_a_lock(engine, second)
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert "outcome" in second and second["outcome"] is None  # nothing was left waiting
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(FeedBatch)).one() == 1
        numbers = session.exec(select(StoredMessage.batch_number)).all()
        assert len(numbers) == 12 and set(numbers) == {1}
        assert audit.verify(session).ok


def _wait_until_waiting_for_a_lock(engine, worker: dict, bound_s: float = 60) -> None:
    """Until the worker's database session waits for a lock the first one holds (bounded, not timed)."""
    query = text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid")
    deadline = time.monotonic() + bound_s
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            if "pid" in worker and connection.execute(query, {"pid": worker["pid"]}).scalar():
                return
            connection.rollback()
            time.sleep(0.02)
    pytest.fail("the second worker never waited for the first one's lock")
