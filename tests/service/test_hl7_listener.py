"""The MLLP listener on the store: stored before the ACK, cut into monitored batches, local codes queued,
dead letters kept; and a listener killed with SIGKILL while senders stream loses no acknowledged message."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from ingest import hl7v2
from ingest.mllp import MLLPClient, ack_code
from service.monitoring.messages import EngineStore, Listener, batch_messages, list_dead_letters
from service.store.db import engine_for, session_scope, upgrade
from service.store.feeds import Feed, FeedAlert, FeedBatch
from service.store.messages import StoredMessage
from service.store.tables import SourceItem
from tests.service.hl7_feed import lab_messages, make_feed, oru

REPO = Path(__file__).resolve().parents[2]


def digest(message: str) -> str:
    return hl7v2.parse_message(message.encode()).sha256


@pytest.fixture
def store(db_url, tmp_path):
    engine = engine_for(db_url)
    upgrade(engine)
    feed, project = make_feed(engine, tmp_path)
    return engine, feed, project


async def wait_for(check, seconds: float = 60.0) -> None:
    """Poll `check` (a blocking store read) until it holds; fail after `seconds` (a bound, not a timing)."""
    async with asyncio.timeout(seconds):
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.05)


def count(engine, query) -> int:
    with session_scope(engine) as session:
        return session.exec(query).one()


def test_listener_stores_before_ack_batches_alerts_and_queues_codes(store, tmp_path):
    engine, feed, project = store
    clean = lab_messages(20)
    shifted = lab_messages(20, start=100, unit="mmol/L", scale=1 / 18, flag="ZZ")

    async def scenario() -> None:
        stop = asyncio.Event()
        listener = Listener(engine, tmp_path, feed, "mllp-test", port=0, batch_size=20, batch_seconds=600)
        served = asyncio.create_task(listener.serve(stop))
        await listener.ready.wait()
        async with MLLPClient("127.0.0.1", listener.port) as client:
            for message in clean + shifted:
                assert ack_code(await client.send(message)) == "AA"
                held = select(func.count()).where(StoredMessage.sha256 == digest(message))
                assert await asyncio.to_thread(count, engine, held) == 1  # in the store when the ACK came
            nak = await client.send("MSH|^~\\&|LIS|NORTH LAB|CW|HOSP|20240105||ORU^R01|BAD1|P|2.5.1\rnot a segment")
            assert ack_code(nak) == "AE"
        await wait_for(lambda: count(engine, select(func.count()).select_from(FeedBatch)) == 2)
        stop.set()
        await served

    asyncio.run(scenario())
    with session_scope(engine) as session:
        batches = session.exec(select(FeedBatch).order_by(FeedBatch.number)).all()
        first, second = batches
        assert (first.rows, second.rows) == (40, 40)  # two results per message, each message in one batch
        checks = {(a.check_name, a.segment) for a in session.exec(select(FeedAlert))}
        assert ("conformance", "site=NORTH LAB") in checks  # OBX-8 'ZZ' is not an HL7 abnormal flag
        assert any(line["check"] == "conformance" for line in second.alerts)
        assert not any(line["check"] == "conformance" for line in first.alerts)
        assert any(check != "conformance" for check, _ in checks)  # the unit change is seen by the monitors
        behind = batch_messages(session, session.get(Feed, feed.id), 2)
        assert [m.control_id for m in behind] == [f"L{i}" for i in range(100, 120)]
        glucose = session.exec(select(SourceItem).where(SourceItem.code == "GLU")).one()
        assert glucose.project_id == project.id and glucose.frequency == 40
        assert "mmol/L (20)" in glucose.context["units"] and glucose.context["messages"] == "40"
        [dead] = list_dead_letters(session, session.get(Feed, feed.id))
        assert dead.origin == "mllp" and "not a segment" in dead.reason


def test_a_group_of_messages_is_stored_in_one_transaction_each_once(store):
    engine, feed, _ = store
    first, second = (m.encode() for m in lab_messages(2, start=500))
    long_type = oru("NM|GLU^Glucose^L||90|mg/dL", control_id="T1").replace("ORU^R01^ORU_R01", "X" * 60 + "^" + "Y" * 60)
    messages = EngineStore(engine, feed)
    held = messages(first)
    ids = messages.commit([second, first, second, long_type.encode()])
    assert ids[1] == held and ids[0] == ids[2] and len(set(ids)) == 3  # held and repeated: stored once
    with session_scope(engine) as session:
        rows = session.exec(select(StoredMessage).order_by(StoredMessage.id)).all()
        assert [r.control_id for r in rows] == ["L500", "L501", "T1"]
        assert rows[2].message_type == "X" * 40  # cut to its column's size (PostgreSQL refuses longer)
        assert {r.feed_id for r in rows} == {feed.id} and {r.origin for r in rows} == {"mllp"}


def test_listener_cuts_a_batch_after_batch_seconds(store, tmp_path, monkeypatch):
    engine, feed, _ = store

    def in_the_listener(*args, **kwargs):
        raise AssertionError("a batch was scored in the listener's process, where ACKs wait on its event loop")

    monkeypatch.setattr("service.monitoring.messages.score_pending", in_the_listener)  # this process only

    async def scenario() -> None:
        stop = asyncio.Event()
        listener = Listener(engine, tmp_path, feed, "mllp-test", port=0, batch_size=1000, batch_seconds=0.2)
        served = asyncio.create_task(listener.serve(stop))
        await listener.ready.wait()
        async with MLLPClient("127.0.0.1", listener.port) as client:
            for message in lab_messages(3):
                assert ack_code(await client.send(message)) == "AA"
        unbatched = select(func.count()).where(StoredMessage.batch_number.is_(None))
        await wait_for(lambda: count(engine, unbatched) == 0)
        stop.set()
        await served

    asyncio.run(scenario())
    with session_scope(engine) as session:
        assert sum(b.rows for b in session.exec(select(FeedBatch))) == 6


def test_the_monitors_run_before_the_write_lock_and_again_under_it_when_another_batch_came_first(
    store, tmp_path, monkeypatch
):
    from service.monitoring import feeds as feeds_module
    from service.monitoring.messages import pending, prepare, score_ahead, score_pending

    engine, feed, _ = store
    EngineStore(engine, feed).commit([m.encode() for m in lab_messages(6)])
    scorings = []
    real = feeds_module.score_profiles
    monkeypatch.setattr(feeds_module, "score_profiles", lambda *a, **k: scorings.append(k["batch_id"]) or real(*a, **k))

    def prepared_ahead(limit: int):
        with session_scope(engine) as session:
            waiting = prepare(session.get(Feed, feed.id), pending(session, session.get(Feed, feed.id), limit))
            waiting.scored = score_ahead(session, tmp_path, session.get(Feed, feed.id), waiting.profiled)
        return waiting

    first = prepared_ahead(3)
    assert scorings == ["1"]
    with session_scope(engine) as session:
        batch, _, _ = score_pending(session, tmp_path, session.get(Feed, feed.id), "t", limit=3, prepared=first)
    assert batch.number == 1 and scorings == ["1"]  # the findings made before the lock were used as they were

    ahead = prepared_ahead(3)  # the other three, scored ahead as batch 2 ...
    assert scorings == ["1", "2"]
    with session_scope(engine) as session:  # ... but another batch (an upload) is posted first
        feeds_module.post_batch(session, tmp_path, session.get(Feed, feed.id), first.profiled, "t", evidently=False)
    assert scorings == ["1", "2", "2"]
    with session_scope(engine) as session:
        batch, _, _ = score_pending(session, tmp_path, session.get(Feed, feed.id), "t", limit=3, prepared=ahead)
    assert batch.number == 3 and scorings == ["1", "2", "2", "3"]  # stale: scored again under the lock


def test_a_read_scope_neither_waits_for_nor_holds_up_an_sqlite_writer(tmp_path):
    from sqlalchemy import text

    from service.store.db import read_scope

    engine = engine_for(f"sqlite:///{tmp_path / 'store.db'}")
    with session_scope(engine) as session:
        session.exec(text("CREATE TABLE t (x INTEGER)"))
    writing, done = threading.Event(), threading.Event()

    def writer() -> None:
        with session_scope(engine) as session:
            session.exec(text("INSERT INTO t VALUES (1)"))
            writing.set()
            done.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(30)
        with read_scope(engine) as session:  # would wait for the writer (busy timeout 60 s) under BEGIN IMMEDIATE
            assert session.exec(text("SELECT count(*) FROM t")).one() == (0,)
    finally:
        done.set()
        thread.join(30)
    with read_scope(engine) as session:
        session.exec(text("INSERT INTO t VALUES (2)"))  # not kept: a read scope writes nothing
    with session_scope(engine) as session:
        assert session.exec(text("SELECT x FROM t")).all() == [(1,)]


# -- kill -9 ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ListenerProcess:
    """`crosswalk listen` in a subprocess on loopback; its stderr drained by a thread."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        command = [sys.executable, "-c", "from service.cli import main; main()", "listen", "--feed", "labs"]
        command += ["--port", str(port), "--batch-size", "500", "--batch-seconds", "2"]
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        self.children: list[int] = []  # seen when it was killed
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_listening(self, seconds: float = 120.0) -> None:
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=seconds)
            except queue.Empty:
                raise AssertionError(f"listener did not start: {''.join(seen)}") from None
            seen.append(line)
            if "listening for feed" in line:
                return
            assert self.process.poll() is None, "".join(seen)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.children += child_processes(self.process.pid)
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def child_processes(pid: int) -> list[int]:
    """A process's children (the listener's scoring process), from Linux's /proc; [] elsewhere."""
    return [int(child) for path in Path(f"/proc/{pid}/task").glob("*/children") for child in path.read_text().split()]


def running(pid: int) -> bool:
    """Whether a process still runs (an exited one nobody reaped is a zombie, state Z: not running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
def test_kill_9_while_senders_stream_loses_no_acknowledged_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = engine_for(url)
    upgrade(engine)
    make_feed(engine, tmp_path)
    env = {**os.environ, "CROSSWALK_HOME": str(tmp_path), "CROSSWALK_DATABASE_URL": url, "CROSSWALK_ACTOR": "mllp"}
    env["PYTHONPATH"] = str(REPO)
    port = free_port()
    senders = [lab_messages(16, start=1000 * (k + 1)) for k in range(5)]
    acked: set[str] = set()
    listeners = [ListenerProcess(env, port)]
    listeners[0].wait_listening()

    async def send(messages: list[str]) -> None:
        done = 0
        while done < len(messages):
            try:
                async with MLLPClient("127.0.0.1", port, timeout=30) as client:
                    while done < len(messages):
                        assert ack_code(await client.send(messages[done])) == "AA"
                        acked.add(digest(messages[done]))
                        done += 1
                        if len(acked) == 30:  # mid-stream: kill -9, then start it again
                            listeners[0].kill()
                            listeners.append(ListenerProcess(env, port))
                            await asyncio.to_thread(listeners[-1].wait_listening)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                await asyncio.sleep(0.1)  # no ACK: resend once the listener is back, as an engine does

    async def scenario() -> None:
        async with asyncio.timeout(240):
            await asyncio.gather(*(send(messages) for messages in senders))
            unbatched = select(func.count()).where(StoredMessage.batch_number.is_(None))
            await wait_for(lambda: count(engine, unbatched) == 0)

    try:
        asyncio.run(scenario())
    finally:
        for listener in listeners:
            listener.kill()
    assert len(listeners) == 2
    assert listeners[0].children or not Path("/proc").is_dir()  # the scoring process, which must not outlive it
    asyncio.run(wait_for(lambda: not any(running(pid) for pid in listeners[0].children), 30))
    sent = {digest(m) for messages in senders for m in messages}
    with session_scope(engine) as session:
        stored = session.exec(select(StoredMessage.sha256)).all()
        assert acked == sent and set(stored) == sent and len(stored) == len(sent)  # every ACKed one, none twice
        batches = session.exec(select(FeedBatch)).all()
        assert sum(b.rows for b in batches) == 2 * len(sent)  # each message scored in exactly one batch
