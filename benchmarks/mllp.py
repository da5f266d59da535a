"""HL7 v2 over MLLP: sustained ORU ingest with a durable store, ACK latency under load, and a kill -9.

The listener runs in its own process. With ``--store service`` (the default) it is ``crosswalk listen``
itself, on a fresh SQLite file and on a fresh PostgreSQL schema (``--pg-url``; skipped where no server
answers): each message committed to the service's message store before its ACK, the messages that arrive
together in one transaction (``ingest.mllp.GroupCommit``), while the listener cuts and scores batches
(500 messages, or what waited 5 s) as it does in production. With ``--store sqlite`` the listener is a bare
``ingest.mllp.MLLPServer`` whose store is a minimal SQLite WAL table (``synchronous=FULL``) behind the
same group commit: what durability costs without the service. Senders are asyncio MLLP clients in
this process, each waiting for its ACK before sending the next message, as interface engines do.

Figures printed, in one run:
- baseline: raw parse + flatten rate of the same messages in one process (no network, no store),
  and the listener's rate with a no-op store (what the durable store costs);
- store only (``--store service``): the service's message store behind a bare listener, one transaction
  per message (the naive baseline) against group commit; the run fails if group commit loses;
- sustained: messages/s through each durable listener from 10 senders (target >= 1,000/s);
- latency: ACK p50/p99 at 100 messages/s from 10 senders (target p99 <= 50 ms), once the batches
  of the sustained run are scored;
- crash: the listener is killed with SIGKILL while 10 senders stream, restarted, the senders
  resend what was not acknowledged; every acknowledged message must be in the store, once.

Exits non-zero when an acknowledged message is missing or a message is stored twice (always a
bug), and, with ``--strict``, when a speed target is missed.

    python benchmarks/mllp.py [--store service|sqlite] [--messages 6000] [--seconds 10] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest import hl7v2  # noqa: E402
from ingest.mllp import GroupCommit, MLLPClient, MLLPServer, ack_code, frame  # noqa: E402

SAMPLES = REPO / "data" / "samples" / "hl7v2"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SENDERS = 10


# -- the durable store (what the listener process runs) ----------------------------------------------------------


class SqliteStore:
    """A minimal SQLite WAL store: the messages of one ``commit`` are durable (fsync'd) when it returns."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE, received REAL, raw BLOB)"
        )

    def commit(self, raws: list[bytes]) -> list[int]:
        now = time.time()
        rows = [(hashlib.sha256(raw).hexdigest(), now, zlib.compress(raw, 1)) for raw in raws]
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        # a message resent after a crash is stored once: the sha256 is the key
        cursor.executemany("INSERT OR IGNORE INTO message (sha256, received, raw) VALUES (?, ?, ?)", rows)
        cursor.execute("COMMIT")
        found = dict(
            cursor.execute(
                f"SELECT sha256, id FROM message WHERE sha256 IN ({','.join('?' * len(rows))})", [r[0] for r in rows]
            ).fetchall()
        )
        return [found[r[0]] for r in rows]


def listen(database: str | None, port_file: str, url: str | None = None, per_message: bool = False) -> None:
    """The listener process: serve until killed, writing the bound port to ``port_file``. Its store: the
    minimal SQLite one at ``database``, the service's message store at ``url`` (group commit, or one
    transaction per message with ``per_message``), or a no-op one."""

    async def run() -> None:
        store, dead_letter = _noop_store, lambda raw, reason: None
        if database:
            store = GroupCommit(SqliteStore(Path(database)).commit)
        elif url:
            from sqlmodel import select

            from service.monitoring.messages import EngineStore
            from service.store.db import engine_for, session_scope
            from service.store.feeds import Feed

            engine = engine_for(url)
            with session_scope(engine) as session:
                service_store = EngineStore(engine, session.exec(select(Feed)).one())
            store = service_store if per_message else GroupCommit(service_store.commit)
            dead_letter = service_store.dead_letter
        server = MLLPServer(store=store, dead_letter=dead_letter, port=0)
        port = await server.start()
        Path(port_file).write_text(str(port))
        await server.serve_forever()

    asyncio.run(run())


async def _noop_store(raw: bytes) -> int:
    return 0


def start_listener(
    database: Path | None, workdir: Path, url: str | None = None, per_message: bool = False
) -> tuple[subprocess.Popen, int]:
    port_file = workdir / f"port-{time.monotonic_ns()}"
    args = [sys.executable, __file__, "--listen", str(database or ""), "--port-file", str(port_file)]
    args += ["--listen-url", url] if url else []
    args += ["--per-message"] if per_message else []
    process = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the MLLP listener did not start (exit status {process.poll()})")
        time.sleep(0.05)
    return process, int(port_file.read_text())


def store_only(target: ServiceListener, workdir: Path, messages: int) -> None:
    """The service's message store behind a bare listener (no batches scored): one transaction per message
    (the naive baseline) against group commit. Group commit losing to it fails the run."""
    rates = {}
    for per_message in (True, False):
        process, port = start_listener(None, workdir, target.url, per_message)
        try:
            rates[per_message] = throughput(port, oru_messages(messages, "P" if per_message else "G"))
        finally:
            process.kill()
            process.wait()
    print(f"baseline  store only, a transaction per message {rates[True]:8.0f} msg/s")
    print(f"store     store only, group commit              {rates[False]:8.0f} msg/s")
    if rates[False] < rates[True]:
        raise SystemExit(f"FAIL: group commit ({rates[False]:.0f} msg/s) lost to a commit per message")


# -- the senders --------------------------------------------------------------------------------------------------


def oru_templates() -> list[bytes]:
    """The sample messages' ORU^R01s."""
    return [m.raw for path in sorted(SAMPLES.glob("*.hl7")) for m in hl7v2.read_file(path) if m.message_code == "ORU"]


def oru_messages(count: int, tag: str) -> list[bytes]:
    """``count`` distinct ORU^R01 messages made from the sample ORUs, each with its own control id."""
    templates = oru_templates()
    messages = []
    for i in range(count):
        template = templates[i % len(templates)]
        header, rest = template.split(b"\r", 1)
        fields = header.split(b"|")
        fields[9] = f"{tag}{i:07d}".encode()
        messages.append(b"|".join(fields) + b"\r" + rest)
    return messages


async def _send_all(port: int, messages: list[bytes], rate_per_sender: float | None = None) -> list[float]:
    """Send ``messages`` split over SENDERS connections; return each ACK's latency in seconds."""
    latencies: list[float] = []

    framed = [frame(m) for m in messages]  # framing is the sender's work, done before the clock starts

    async def sender(share: list[bytes]) -> None:
        async with MLLPClient("127.0.0.1", port) as client:
            start = time.perf_counter()
            for n, message in enumerate(share):
                if rate_per_sender:
                    await asyncio.sleep(max(0.0, start + n / rate_per_sender - time.perf_counter()))
                sent = time.perf_counter()
                ack = await client.send_raw(message)
                latencies.append(time.perf_counter() - sent)
                if not _accepted(ack):
                    raise SystemExit(f"listener answered {(ack or b'(no ACK)')[:200]!r}")

    await asyncio.gather(*(sender(framed[i::SENDERS]) for i in range(SENDERS)))
    return latencies


def _accepted(ack: bytes | None) -> bool:
    return ack_code(ack) in ("AA", "CA")  # CA: a sample message asks for enhanced mode


def check_rate(messages: list[bytes]) -> float:
    """What the listener does to a message before its ACK, in process: frame, MSH, charset, segments."""
    start = time.perf_counter()
    for raw in messages:
        hl7v2.read_messages(raw)
    return len(messages) / (time.perf_counter() - start)


def flatten_rate(messages: list[bytes]) -> float:
    """Full python-hl7 parse and flattening into rows, in process: the work behind the ACK."""
    start = time.perf_counter()
    for raw in messages:
        for message in hl7v2.read_messages(raw):
            hl7v2.flatten(message)
    return len(messages) / (time.perf_counter() - start)


def throughput(port: int, messages: list[bytes]) -> float:
    start = time.perf_counter()
    asyncio.run(_send_all(port, messages))
    return len(messages) / (time.perf_counter() - start)


class BareListener:
    """The bare ``MLLPServer`` in its own process, on the minimal SQLite store (a no-op one without a file)."""

    def __init__(self, workdir: Path, database: Path | None) -> None:
        self.workdir, self.database = workdir, database
        self.name = "bare MLLPServer, SQLite WAL" if database else "MLLP, no-op store"

    def start(self) -> tuple[subprocess.Popen, int]:
        return start_listener(self.database, self.workdir)

    def digests(self) -> list[str]:
        with sqlite3.connect(self.database) as connection:
            return [row[0] for row in connection.execute("SELECT sha256 FROM message")]

    def wait_scored(self) -> float:
        return 0.0  # nothing is scored behind this listener

    def close(self) -> None:
        pass


class ServiceListener:
    """``crosswalk listen`` in its own process, on a store URL with a feed made for it."""

    def __init__(self, workdir: Path, url: str, name: str) -> None:
        from service.monitoring import feeds
        from service.monitoring.messages import rows_upload
        from service.store.db import engine_for, session_scope, upgrade

        self.name, self.home, self.url = name, workdir / name.replace(" ", "-"), url
        self.engine = engine_for(url)
        upgrade(self.engine)
        rows = hl7v2.flatten_all(m for m in hl7v2.read_messages(b"\r".join(oru_templates())) if m.ok)
        with session_scope(self.engine) as session:
            data = feeds.valid_feed(name="bench", segment_columns=["site"])
            feeds.create_feed(session, self.home, data, rows_upload(rows, "reference.csv"), "bench")
        self.starts = 0

    def start(self) -> tuple[subprocess.Popen, int]:
        self.starts += 1
        log = self.home / f"listen-{self.starts}.log"
        env = {**os.environ, "CROSSWALK_HOME": str(self.home), "CROSSWALK_DATABASE_URL": self.url}
        env.update(CROSSWALK_ACTOR="bench", PYTHONPATH=str(REPO))
        command = [sys.executable, "-c", "from service.cli import main; main()", "listen", "--feed", "bench"]
        with log.open("w") as stderr:  # the child keeps its own handle
            # batches as in production, but a partial one is cut after 5 s rather than 60 s, so the runs
            # below need not wait a minute for the last messages to be scored
            command += ["--port", "0", "--batch-size", "500", "--batch-seconds", "5"]
            process = subprocess.Popen(command, cwd=REPO, env=env, stderr=stderr)
        deadline = time.monotonic() + 180  # a restart scores what a crash left unbatched first
        while not (found := re.search(r"listening for feed \S+ on \S+:(\d+)", log.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"crosswalk listen did not start: {log.read_text()[-500:]}")
            time.sleep(0.05)
        return process, int(found[1])

    def digests(self) -> list[str]:
        from sqlmodel import select

        from service.store.db import session_scope
        from service.store.messages import StoredMessage

        with session_scope(self.engine) as session:
            return list(session.exec(select(StoredMessage.sha256)))

    def wait_scored(self) -> float:
        """Wait until every stored message is in a batch (the listener scores them behind the ACKs)."""
        from sqlalchemy import func
        from sqlmodel import col, select

        from service.store.db import session_scope
        from service.store.messages import StoredMessage

        started = time.perf_counter()
        waiting = select(func.count()).where(col(StoredMessage.batch_number).is_(None))
        deadline = time.monotonic() + 600
        while True:
            with session_scope(self.engine) as session:
                if session.exec(waiting).one() == 0:
                    return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise SystemExit("FAIL: stored messages still wait for a batch after 10 minutes")
            time.sleep(0.2)

    def close(self) -> None:
        self.engine.dispose()


Listener = BareListener | ServiceListener


def crash_and_resend(target: Listener, count: int) -> tuple[int, int, int]:
    """Stream, SIGKILL the listener mid-stream, restart it, resend the unacknowledged; check the store."""
    messages = oru_messages(count, "K")
    acknowledged: set[bytes] = set()
    process, port = target.start()
    resent = 0

    async def stream(target_port: int, share: list[bytes]) -> list[bytes]:
        """Send until the connection breaks; return what was not acknowledged."""
        try:
            async with MLLPClient("127.0.0.1", target_port, timeout=5) as client:
                for message in share:
                    if _accepted(await client.send(message)):
                        acknowledged.add(message)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        return [m for m in share if m not in acknowledged]

    async def first_round() -> list[bytes]:
        asyncio.get_running_loop().call_later(0.5, os.kill, process.pid, signal.SIGKILL)
        leftovers = await asyncio.gather(*(stream(port, messages[i::SENDERS]) for i in range(SENDERS)))
        return [m for share in leftovers for m in share]

    unacknowledged = asyncio.run(first_round())
    process.wait()
    process, port = target.start()
    try:
        resent = len(unacknowledged)
        asyncio.run(_send_all(port, unacknowledged))
        acknowledged.update(unacknowledged)
        target.wait_scored()  # messages stored before the crash are batched after the restart
    finally:
        process.kill()
        process.wait()
    digests = target.digests()
    missing = {hashlib.sha256(m).hexdigest() for m in acknowledged} - set(digests)
    duplicates = len(digests) - len(set(digests))
    if missing or duplicates:
        raise SystemExit(f"FAIL: {len(missing)} acknowledged messages missing, {duplicates} stored twice after kill -9")
    return len(acknowledged), resent, len(set(digests) & {hashlib.sha256(m).hexdigest() for m in messages})


def measure(target: Listener, args: argparse.Namespace, missed: list[str]) -> None:
    """Sustained rate, ACK latency at 100 msg/s, every ACKed message stored, and a kill -9, on one listener."""
    print(f"-- {target.name}")
    process, port = target.start()
    try:
        rate = throughput(port, oru_messages(args.messages, "D"))
        print(f"sustained 10 senders                        {rate:8.0f} msg/s   (target >= 1000)")
        if rate < 1000:
            missed.append(f"sustained rate ({target.name})")
        scored = target.wait_scored()
        if scored:
            print(f"scored    every batch behind the ACKs, {scored:.1f} s after the last ACK")
        count = int(100 * args.seconds)
        latencies = asyncio.run(_send_all(port, oru_messages(count, "L"), rate_per_sender=100 / SENDERS))
    finally:
        process.kill()
        process.wait()
    p50 = statistics.median(latencies) * 1000
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    print(f"latency   100 msg/s from {SENDERS} senders: ACK p50 {p50:.1f} ms  p99 {p99:.1f} ms   (target p99 <= 50)")
    if p99 > 50:
        missed.append(f"ACK p99 ({target.name})")
    stored = len(set(target.digests()))
    expected = args.messages + count
    if stored != expected:
        raise SystemExit(f"FAIL: {expected} messages acknowledged but {stored} stored")
    print(f"durable   every acknowledged message stored: {stored} of {expected}")
    acknowledged, resent, in_store = crash_and_resend(target, max(2000, args.messages // 2))
    print(
        f"kill -9   {acknowledged} acknowledged ({resent} resent after the restart), "
        f"{in_store} in the store, none missing, none twice"
    )


@contextmanager
def service_store(pg_url: str, workdir: Path, backend: str, use: str) -> Iterator[ServiceListener | None]:
    """`crosswalk listen` on a fresh SQLite file or PostgreSQL schema; None (a line says why) where no
    PostgreSQL server answers."""
    name = f"crosswalk listen, {backend}" if use == "listen" else f"store only, {backend}"
    if backend == "SQLite":
        target = ServiceListener(workdir, f"sqlite:///{workdir / use}.db", name)
        try:
            yield target
        finally:
            target.close()
        return
    from sqlalchemy import create_engine

    from benchmarks.api import pg_schema

    try:
        with create_engine(pg_url).connect():
            pass
    except Exception as error:  # noqa: BLE001 - any failure to connect means: no server to measure
        print(f"-- {name}: skipped (no server at --pg-url: {type(error).__name__})")
        yield None
        return
    with pg_schema(pg_url) as url:
        target = ServiceListener(workdir, url, name)
        try:
            yield target
        finally:
            target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("service", "sqlite"), default="service", help="the listener measured")
    parser.add_argument("--messages", type=int, default=6000, help="messages for the throughput runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 100 msg/s latency run")
    parser.add_argument("--pg-url", default=os.environ.get("CROSSWALK_TEST_POSTGRES_URL", PG_DEFAULT))
    parser.add_argument("--strict", action="store_true", help="exit 1 when a speed target is missed")
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--listen-url", help=argparse.SUPPRESS)
    parser.add_argument("--per-message", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.port_file:
        listen(args.listen or None, args.port_file, args.listen_url, args.per_message)
        return

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cpus: {os.cpu_count()}  load average: {load}  senders: {SENDERS}  messages: {args.messages}")
    messages = oru_messages(args.messages, "T")
    obx = sum(len(hl7v2.flatten(m)) for m in hl7v2.read_messages(b"\r".join(messages[:100]))) / 100
    print(f"message: ORU^R01, {sum(map(len, messages)) / len(messages):.0f} bytes, {obx:.1f} OBX rows on average")
    print(f"baseline  check before ACK, in process      {check_rate(messages):8.0f} msg/s")
    print(f"baseline  parse + flatten, in process       {flatten_rate(messages[:500]):8.0f} msg/s   (after the ACK)")
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, port = start_listener(None, workdir)
        try:
            print(f"baseline  MLLP, no-op store                 {throughput(port, messages):8.0f} msg/s")
        finally:
            process.kill()
            process.wait()
        if args.store == "sqlite":
            measure(BareListener(workdir, workdir / "store.sqlite"), args, missed)
        else:
            for backend in ("SQLite", "PostgreSQL"):
                with service_store(args.pg_url, workdir, backend, "store-only") as target:
                    if target is not None:
                        print(f"-- the service's message store, {backend}")
                        store_only(target, workdir, args.messages)
                with service_store(args.pg_url, workdir, backend, "listen") as target:
                    if target is not None:
                        measure(target, args, missed)
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        if args.strict:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
