"""The MLLP listener: ACK only after the store, NAK after the dead letter, and nothing a sender does stops it."""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time

import pytest
from hl7_messages import HL7_SAMPLES, oru

from ingest import hl7v2
from ingest.mllp import (
    END_BLOCK,
    START_BLOCK,
    GroupCommit,
    MLLPClient,
    MLLPServer,
    ack_code,
    acknowledgment_code,
    frame,
    receive,
    send_messages,
)

GLUCOSE = "NM|GLU^Glucose^L||5.4|mmol/L||N|||F"


class Recorder:
    """An in-memory store and dead-letter box that also logs the order of events."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.dead: list[tuple[bytes, str]] = []
        self.events: list[str] = []
        self.fail_store = False

    def store(self, raw: bytes) -> int:
        if self.fail_store:
            raise OSError("disk full")
        self.stored.append(raw)
        self.events.append("stored")
        return len(self.stored)

    def dead_letter(self, raw: bytes, reason: str) -> None:
        self.dead.append((raw, reason))


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def _msa(ack: bytes) -> list[str]:
    segment = next(s for s in ack.split(b"\r") if s.startswith(b"MSA"))
    return segment.decode().split("|")


def test_each_sample_is_stored_then_acknowledged_with_its_control_id():
    recorder = Recorder()
    samples = [path.read_bytes() for path in sorted(HL7_SAMPLES.glob("*.hl7"))]

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                acks = []
                for sample in samples:
                    acks.append(await client.send(sample))
                    recorder.events.append("ack")
                return acks

    acks = run(scenario())
    expected = [hl7v2.read_messages(s)[0] for s in samples]
    # original mode answers AA; a sample that asks for enhanced mode (MSH-15 AL) gets its commit ACK
    assert [ack_code(a) for a in acks] == [acknowledgment_code(m, "accept") for m in expected]
    assert {ack_code(a) for a in acks} == {"AA", "CA"}
    assert recorder.events == ["stored", "ack"] * len(samples)
    assert [_msa(a)[2] for a in acks] == [m.control_id for m in expected]
    # what was stored is the message the rows point at
    assert [hashlib.sha256(raw).hexdigest() for raw in recorder.stored] == [m.sha256 for m in expected]


def test_an_async_store_and_the_accepted_callback():
    stored, accepted = [], []

    async def store(raw: bytes) -> str:
        await asyncio.sleep(0)
        stored.append(raw)
        return f"ref-{len(stored)}"

    async def scenario():
        server = MLLPServer(store=store, dead_letter=lambda raw, reason: None, port=0)
        server.on_accepted = lambda messages, refs: accepted.append(
            ([(m.control_id, m.index) for m in messages], list(refs))
        )
        async with server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                await client.send(oru(GLUCOSE, control_id="C1"))
                await client.send(oru(GLUCOSE, control_id="C2"))
            for _ in range(100):
                if len(accepted) == 2:
                    break
                await asyncio.sleep(0.01)

    run(scenario())
    assert accepted == [([("C1", 0)], ["ref-1"]), ([("C2", 1)], ["ref-2"])]  # index: position on the connection


def test_a_store_failure_is_answered_ar_and_nothing_is_acknowledged():
    recorder = Recorder()
    recorder.fail_store = True

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                failed = await client.send(oru(GLUCOSE, control_id="X1"))
                recorder.fail_store = False
                retried = await client.send(oru(GLUCOSE, control_id="X1"))
                return failed, retried

    failed, retried = run(scenario())
    assert _msa(failed)[1:3] == ["AR", "X1"] and "disk full" in _msa(failed)[3]
    assert b"\rERR|" in failed
    assert ack_code(retried) == "AA" and len(recorder.stored) == 1


def test_unreadable_messages_are_dead_lettered_then_nakked():
    recorder = Recorder()
    broken = b"MSH|^~\\&|LIS|NORTH|||2024||ORU^R01|BAD1|P|2.5\rOBX|1|ST|A^B^L||\xff\xfe"

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                return [await client.send(broken), await client.send(b"\x00\x01 binary junk")]

    content_error, garbage = run(scenario())
    assert _msa(content_error)[1:3] == ["AE", "BAD1"] and "utf-8" in _msa(content_error)[3]
    assert ack_code(garbage) == "AR"
    assert [raw for raw, _ in recorder.dead] == [broken, b"\x00\x01 binary junk"]
    assert recorder.stored == []


def test_acknowledgment_modes_follow_msh15_and_msh16():
    def mode(accept: str, application: str) -> hl7v2.Hl7Message:
        return hl7v2.read_messages(oru(GLUCOSE, ack_types=f"|||{accept}|{application}"))[0]

    assert acknowledgment_code(mode("", ""), "accept") == "AA"
    assert acknowledgment_code(mode("AL", "NE"), "accept") == "CA"
    assert acknowledgment_code(mode("AL", "NE"), "error") == "CE"
    assert acknowledgment_code(mode("ER", "NE"), "accept") is None
    assert acknowledgment_code(mode("ER", "NE"), "reject") == "CR"
    assert acknowledgment_code(mode("NE", "AL"), "accept") == "AA"
    assert acknowledgment_code(mode("NE", "NE"), "accept") is None
    assert acknowledgment_code(None, "reject") == "AR"


def test_enhanced_mode_over_the_wire():
    recorder = Recorder()

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                return await client.send(oru(GLUCOSE, ack_types="|||AL|NE"))

    assert ack_code(run(scenario())) == "CA"


def test_the_sender_waits_only_for_acks_msh15_and_msh16_ask_for():
    """NE is never answered, ER only on failure, SU only on success: the sender neither hangs on an ACK that
    will not come nor pairs an ACK with the wrong message (send_messages runs its own event loop)."""
    recorder = Recorder()
    broken = "\r".join([oru(GLUCOSE, control_id="E2", ack_types="|||ER|NE"), "not a segment"])
    messages = [
        oru(GLUCOSE, control_id="N1", ack_types="|||NE|NE"),
        oru(GLUCOSE, control_id="N2", ack_types="|||NE"),
        oru(GLUCOSE, control_id="E1", ack_types="|||ER|NE"),  # stored: no answer
        broken,  # dead-lettered: CE
        oru(GLUCOSE, control_id="S1", ack_types="|||SU|NE"),  # stored: CA
        oru(GLUCOSE, control_id="E3", ack_types="|||ER|NE"),  # stored: no answer, the last one
        oru(GLUCOSE, control_id="O1"),  # original mode: AA
        oru(GLUCOSE, control_id="E4", ack_types="|||ER|NE"),
    ]
    started, stop = threading.Event(), threading.Event()
    server = MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0)

    async def serve() -> None:
        async with server:
            started.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert started.wait(30)
        # a wait for an ACK that never comes would raise TimeoutError after 10 s
        acks = send_messages("127.0.0.1", server.port, messages, timeout=10, quiet=0.3)
        single = send_messages("127.0.0.1", server.port, [oru(GLUCOSE, control_id="N3", ack_types="|||NE|NE")])
        # nothing answers N3, so the sender returns as soon as it is written: wait for the receiver to store it
        deadline = time.monotonic() + 10
        while len(recorder.stored) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(30)
    assert [ack_code(a) for a in acks] == ["", "", "", "CE", "CA", "", "AA", ""]
    assert [_msa(a)[2] for a in acks if a is not None] == ["E2", "S1", "O1"]
    assert single == [None]
    assert len(recorder.stored) == 8 and len(recorder.dead) == 1  # every message reached the receiver


def test_group_commit_stores_what_arrives_together_in_one_commit_and_a_refused_message_fails_alone():
    groups: list[list[bytes]] = []

    def commit(raws: list[bytes]) -> list[int]:
        groups.append(list(raws))
        if b"POISON" in raws:
            raise ValueError("value too long")
        return [int(raw) for raw in raws]

    store = GroupCommit(commit)
    raws = [b"1", b"2", b"POISON", b"4", b"5"]

    async def scenario():
        together = await asyncio.gather(*(store(raw) for raw in raws), return_exceptions=True)
        alone = await store(b"6")  # the writer ended when nothing waited; a new message starts it again
        return together, alone

    together, alone = run(scenario())
    assert groups[0] == raws  # one transaction for the five that arrived together
    assert groups[1:] == [[raw] for raw in raws] + [[b"6"]]  # it failed: each again alone
    assert together[:2] == [1, 2] and together[3:] == [4, 5] and isinstance(together[2], ValueError)
    assert alone == 6 and store.commits == 7


def test_group_commit_over_mllp_acknowledges_each_message_only_after_its_commit():
    committed: set[bytes] = set()

    def commit(raws: list[bytes]) -> list[int]:
        time.sleep(0.005)  # a transaction takes a while: the senders' next messages queue behind it
        committed.update(raws)
        return list(range(len(raws)))

    store = GroupCommit(commit)

    async def sender(port: int, n: int) -> list[str]:
        codes = []
        async with MLLPClient("127.0.0.1", port) as client:
            for i in range(10):
                message = oru(GLUCOSE, control_id=f"G{n}-{i}")
                codes.append(ack_code(await client.send(message)))
                assert message.encode() in committed  # the ACK came after the commit holding it
        return codes

    async def scenario():
        async with MLLPServer(store=store, dead_letter=lambda raw, reason: None, port=0) as server:
            return await asyncio.gather(*(sender(server.port, n) for n in range(10)))

    assert all(codes == ["AA"] * 10 for codes in run(scenario()))
    assert len(committed) == 100


def test_many_connections_at_once():
    recorder = Recorder()

    async def sender(port: int, n: int) -> list[str]:
        async with MLLPClient("127.0.0.1", port) as client:
            return [ack_code(await client.send(oru(GLUCOSE, control_id=f"S{n}-{i}"))) for i in range(10)]

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            return await asyncio.gather(*(sender(server.port, n) for n in range(20)))

    results = run(scenario())
    assert all(codes == ["AA"] * 10 for codes in results)
    assert len(recorder.stored) == 200 and len(set(recorder.stored)) == 200


def test_oversized_truncated_and_unframed_input_does_not_stop_the_listener():
    recorder = Recorder()

    async def scenario():
        server = MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0, max_message_bytes=64_000)
        async with server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                big = oru("ST|X^Y^L||" + "A" * 10_000_000 + "||||||F", control_id="BIG")
                oversized = await client.send(big)
                after = await client.send(oru(GLUCOSE, control_id="AFTER"))
                unframed = await client.send_raw(b"MSH|no start block" + END_BLOCK)
            # a sender that vanishes mid-message
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(START_BLOCK + oru(GLUCOSE).encode()[:40])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if server.stats.truncated:
                    break
                await asyncio.sleep(0.01)
            async with MLLPClient("127.0.0.1", server.port) as client:
                last = await client.send(oru(GLUCOSE, control_id="LAST"))
            return oversized, after, unframed, last, server.stats

    oversized, after, unframed, last, stats = run(scenario())
    assert _msa(oversized)[1:3] == ["AR", "BIG"] and "exceeds" in _msa(oversized)[3]
    assert _msa(after)[1:3] == ["AA", "AFTER"]
    assert ack_code(unframed) == "AR"
    assert _msa(last)[1:3] == ["AA", "LAST"]
    assert stats.oversized == 1 and stats.truncated == 1
    reasons = [reason for _, reason in recorder.dead]
    assert any("exceeds" in r for r in reasons) and any("truncated" in r for r in reasons)
    assert all(len(raw) <= 64 * 1024 for raw, _ in recorder.dead)


@pytest.mark.slow
def test_fuzzed_frames_are_each_nakked_or_dead_lettered():
    """Bounded fuzzing on loopback: every garbage frame is answered or dead-lettered, the listener keeps serving."""
    recorder = Recorder()
    rng = random.Random(11)
    seeds = [path.read_bytes() for path in sorted(HL7_SAMPLES.glob("*.hl7"))]

    def garbage() -> bytes:
        kind = rng.randrange(5)
        seed = rng.choice(seeds)
        if kind == 0:
            return seed[: rng.randrange(1, len(seed))]  # truncated
        if kind == 1:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))  # binary
        if kind == 2:
            return seed.decode("utf-8").encode("utf-16")  # wrong encoding
        if kind == 3:
            return seed + b"|" + b"~^&" * rng.randrange(1000, 100_000)  # deeply repeated
        data = bytearray(seed)
        for _ in range(20):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)

    async def scenario():
        async with MLLPServer(store=recorder.store, dead_letter=recorder.dead_letter, port=0) as server:
            answered = 0
            async with MLLPClient("127.0.0.1", server.port) as client:
                for _ in range(150):
                    payload = garbage().replace(END_BLOCK, b"")  # keep one frame one frame
                    code = ack_code(await client.send_raw(START_BLOCK + payload + END_BLOCK))
                    assert code in ("AA", "AE", "AR", "CA", "CE", "CR"), code
                    answered += 1
                assert ack_code(await client.send(oru(GLUCOSE))) == "AA"
            return answered, server.stats

    answered, stats = run(scenario())
    assert answered == 150
    assert stats.frames == 151
    # every frame was either stored (a mutation can leave a valid message) or dead-lettered, nothing dropped
    assert stats.accepted + stats.dead_letters == 151


def test_frame_helper_normalises_line_endings():
    assert frame("MSH|a\nPID|b") == START_BLOCK + b"MSH|a\rPID|b" + END_BLOCK


def test_a_store_object_with_an_async_call_runs_on_the_event_loop():
    class AsyncStore:
        def __init__(self) -> None:
            self.loops: list[asyncio.AbstractEventLoop] = []

        async def __call__(self, raw: bytes) -> int:
            self.loops.append(asyncio.get_running_loop())
            return len(self.loops)

    store = AsyncStore()

    async def scenario():
        async with MLLPServer(store=store, dead_letter=lambda raw, reason: None, port=0) as server:
            async with MLLPClient("127.0.0.1", server.port) as client:
                ack = await client.send(oru(GLUCOSE))
            return ack, asyncio.get_running_loop()

    ack, loop = run(scenario())
    assert ack_code(ack) == "AA" and store.loops == [loop]


def test_receive_serves_any_transport_batches_and_failing_dead_letter_stores():
    recorder = Recorder()
    batch = "\r".join(["BHS|^~\\&|LIS|NORTH", oru(GLUCOSE, control_id="B1"), oru(GLUCOSE, control_id="B2"), "BTS|2"])

    def broken_dead_letter(raw: bytes, reason: str) -> None:
        raise OSError("dead-letter disk full")

    async def scenario():
        accepted = await receive(batch.encode(), store=recorder.store, dead_letter=recorder.dead_letter)
        garbage = await receive(b"not hl7", store=recorder.store, dead_letter=recorder.dead_letter)
        lost = await receive(b"not hl7", store=recorder.store, dead_letter=broken_dead_letter)
        return accepted, garbage, lost

    accepted, garbage, lost = run(scenario())
    assert accepted.stored and accepted.refs == [1, 2] and [m.control_id for m in accepted.messages] == ["B1", "B2"]
    assert _msa(accepted.ack)[1:3] == ["AA", "B1"]
    assert garbage.outcome == "reject" and garbage.dead_lettered and ack_code(garbage.ack) == "AR"
    assert lost.outcome == "reject" and not lost.dead_lettered and "resend" in _msa(lost.ack)[3]
    assert len(recorder.stored) == 2 and len(recorder.dead) == 1
