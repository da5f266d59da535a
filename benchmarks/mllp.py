"""HL7 v2 over MLLP: sustained ORU ingest with a durable store, ACK latency under load, and a kill -9.

The listener (``ingest.mllp.MLLPServer``) runs in its own process; the store it is given commits
each message (zlib-compressed, with its sha256 and arrival time) to an SQLite WAL file with
``synchronous=FULL`` before the ACK leaves, committing whatever arrived meanwhile in one
transaction (group commit). Senders are asyncio MLLP clients in this process, each waiting for
its ACK before sending the next message, as interface engines do.

Figures printed, in one run:
- baseline: raw parse + flatten rate of the same messages in one process (no network, no store),
  and the listener's rate with a no-op store (what the durable store costs);
- sustained: messages/s through the durable listener from 10 senders (target >= 1,000/s);
- latency: ACK p50/p99 at 100 messages/s from 10 senders (target p99 <= 50 ms);
- crash: the listener is killed with SIGKILL while 10 senders stream, restarted, the senders
  resend what was not acknowledged; every acknowledged message must be in the store, once.

Exits non-zero when an acknowledged message is missing or a message is stored twice (always a
bug), and, with ``--strict``, when a speed target is missed.

    python benchmarks/mllp.py [--messages 6000] [--seconds 10] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest import hl7v2  # noqa: E402
from ingest.mllp import MLLPClient, MLLPServer, ack_code, frame  # noqa: E402

SAMPLES = REPO / "data" / "samples" / "hl7v2"
SENDERS = 10


# -- the durable store (what the listener process runs) ----------------------------------------------------------


class GroupCommitStore:
    """SQLite WAL store: every message is durable (fsync'd) before ``__call__`` returns its row id.

    Concurrent calls are committed together: one fsync for all messages that arrived while the
    previous commit ran, which is what makes >1,000 durable messages/s possible on one disk.
    """

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE, received REAL, raw BLOB)"
        )
        self.pending: list[tuple[bytes, asyncio.Future]] = []
        self.wakeup: asyncio.Event | None = None
        self.writer: asyncio.Task | None = None

    async def __call__(self, raw: bytes) -> int:
        if self.writer is None:
            self.wakeup = asyncio.Event()
            self.writer = asyncio.create_task(self._write_forever())
        future = asyncio.get_running_loop().create_future()
        self.pending.append((raw, future))
        self.wakeup.set()
        return await future

    async def _write_forever(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            try:
                ids = await asyncio.to_thread(self._commit, [raw for raw, _ in batch])
            except Exception as exc:  # every caller hears about it: its sender gets AR and resends
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), row_id in zip(batch, ids):
                future.set_result(row_id)

    def _commit(self, raws: list[bytes]) -> list[int]:
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


def listen(database: str | None, port_file: str) -> None:
    """The listener process: serve until killed, writing the bound port to ``port_file``."""

    async def run() -> None:
        store = GroupCommitStore(Path(database)) if database else _noop_store
        server = MLLPServer(store=store, dead_letter=lambda raw, reason: None, port=0)
        port = await server.start()
        Path(port_file).write_text(str(port))
        await server.serve_forever()

    asyncio.run(run())


async def _noop_store(raw: bytes) -> int:
    return 0


def start_listener(database: Path | None, workdir: Path) -> tuple[subprocess.Popen, int]:
    port_file = workdir / f"port-{time.monotonic_ns()}"
    args = [sys.executable, __file__, "--listen", str(database or ""), "--port-file", str(port_file)]
    process = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the MLLP listener did not start (exit status {process.poll()})")
        time.sleep(0.05)
    return process, int(port_file.read_text())


# -- the senders --------------------------------------------------------------------------------------------------


def oru_messages(count: int, tag: str) -> list[bytes]:
    """``count`` distinct ORU^R01 messages made from the sample ORUs, each with its own control id."""
    templates = [
        m.raw for path in sorted(SAMPLES.glob("*.hl7")) for m in hl7v2.read_file(path) if m.message_code == "ORU"
    ]
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
                    raise SystemExit(f"listener answered {ack[:200]!r}")

    await asyncio.gather(*(sender(framed[i::SENDERS]) for i in range(SENDERS)))
    return latencies


def _accepted(ack: bytes) -> bool:
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


def stored_digests(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT sha256 FROM message")]


def crash_and_resend(workdir: Path, count: int) -> tuple[int, int, int]:
    """Stream, SIGKILL the listener mid-stream, restart it, resend the unacknowledged; check the store."""
    database = workdir / "crash.sqlite"
    messages = oru_messages(count, "K")
    acknowledged: set[bytes] = set()
    process, port = start_listener(database, workdir)
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
    process, port = start_listener(database, workdir)
    try:
        resent = len(unacknowledged)
        asyncio.run(_send_all(port, unacknowledged))
        acknowledged.update(unacknowledged)
    finally:
        process.kill()
        process.wait()
    digests = stored_digests(database)
    missing = {hashlib.sha256(m).hexdigest() for m in acknowledged} - set(digests)
    duplicates = len(digests) - len(set(digests))
    if missing or duplicates:
        raise SystemExit(f"FAIL: {len(missing)} acknowledged messages missing, {duplicates} stored twice after kill -9")
    return len(acknowledged), resent, len(digests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=6000, help="messages for the throughput runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 100 msg/s latency run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a speed target is missed")
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.port_file:
        listen(args.listen or None, args.port_file)
        return

    print(f"cpus: {os.cpu_count()}  senders: {SENDERS}  messages: {args.messages}")
    messages = oru_messages(args.messages, "T")
    obx = sum(len(hl7v2.flatten(m)) for m in hl7v2.read_messages(b"\r".join(messages[:100]))) / 100
    print(f"message: ORU^R01, {sum(map(len, messages)) / len(messages):.0f} bytes, {obx:.1f} OBX rows on average")
    print(f"baseline  check before ACK, in process    {check_rate(messages):8.0f} msg/s")
    print(f"baseline  parse + flatten, in process     {flatten_rate(messages[:500]):8.0f} msg/s   (after the ACK)")
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, port = start_listener(None, workdir)
        try:
            print(f"baseline  MLLP, no-op store               {throughput(port, messages):8.0f} msg/s")
        finally:
            process.kill()
            process.wait()

        database = workdir / "store.sqlite"
        process, port = start_listener(database, workdir)
        try:
            rate = throughput(port, oru_messages(args.messages, "D"))
            print(f"sustained MLLP, durable SQLite WAL store  {rate:8.0f} msg/s   (target >= 1000)")
            if rate < 1000:
                missed.append("sustained rate")
            count = int(100 * args.seconds)
            latencies = asyncio.run(_send_all(port, oru_messages(count, "L"), rate_per_sender=100 / SENDERS))
        finally:
            process.kill()
            process.wait()
        p50 = statistics.median(latencies) * 1000
        p99 = statistics.quantiles(latencies, n=100)[98] * 1000
        print(
            f"latency   100 msg/s from {SENDERS} senders: ACK p50 {p50:.1f} ms  p99 {p99:.1f} ms   (target p99 <= 50)"
        )
        if p99 > 50:
            missed.append("ACK p99")
        stored = len(stored_digests(database))
        expected = args.messages + count
        if stored != expected:
            raise SystemExit(f"FAIL: {expected} messages acknowledged but {stored} stored")
        print(f"durable   every acknowledged message stored: {stored} of {expected}")

        acknowledged, resent, in_store = crash_and_resend(workdir, max(2000, args.messages // 2))
        print(
            f"kill -9   {acknowledged} acknowledged ({resent} resent after the restart), "
            f"{in_store} in the store, none missing, none twice"
        )
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        if args.strict:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
