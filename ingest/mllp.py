"""An asyncio MLLP listener that acknowledges a message only once it is stored, and a small sender.

MLLP frames each message as ``<VT> message <FS><CR>``; the receiver answers each frame with an ACK.
The listener hands every message to an injected ``store(raw) -> ref`` and sends AA only after it
returned, so an acknowledged message is never lost; a message that cannot be read goes to
``dead_letter(raw, reason)`` and is answered with a NAK (AE/AR, the reason in MSA-3 and ERR).
``receive`` does the same for any transport (an HTTP endpoint takes a body and returns its ACK).
``GroupCommit`` makes such a store of a ``commit(raws)`` that stores many messages in one transaction:
the messages arriving together share one commit, and each ACK still waits for its own message's.
Nothing a sender writes can stop the listener: oversized frames are skipped up to their end marker,
garbage and wrong encodings become dead letters, a vanished sender just closes its connection.

    server = MLLPServer(store=my_store, dead_letter=my_dead_letters, port=2575)
    async with server:
        await server.serve_forever()

Framing is done here, not with python-hl7's ``hl7.mllp`` stream reader: on an oversized frame that
reader drops its buffer and then mis-frames the rest of the message as a new one, and it decodes
with one fixed codec before the message can say its own (MSH-18).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.hl7v2 import Hl7Message, read_messages

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_DEAD_LETTER_HEAD = 64 * 1024  # how much of an oversized frame is kept as evidence

log = logging.getLogger(__name__)

StoredRef = Any  # whatever the store returns: a row id, a path, a key
StoreFn = Callable[[bytes], StoredRef | Awaitable[StoredRef]]
DeadLetterFn = Callable[[bytes, str], Any]
AcceptedFn = Callable[[Sequence[Hl7Message], Sequence[StoredRef]], Any]


def frame(payload: bytes | str) -> bytes:
    """One MLLP frame around an ER7 message (str is UTF-8 encoded; LF/CRLF become CR)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    payload = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return START_BLOCK + payload + END_BLOCK


def ack_code(ack: bytes | str | None) -> str:
    """MSA-1 of an acknowledgment ("AA", "AE", "CA"...), "" when there is none."""
    return _msa_field(ack, 1)


def _msa_field(ack: bytes | str | None, n: int) -> str:
    """MSA-n of an acknowledgment (MSA-1 the code, MSA-2 the control id it answers), "" when absent."""
    if ack is None:
        return ""
    text = ack.decode("utf-8", "replace") if isinstance(ack, bytes) else ack
    for segment in text.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA") and len(segment) > 4:
            fields = segment.split(segment[3])
            return fields[n] if n < len(fields) else ""
    return ""


# -- acknowledgments --------------------------------------------------------------------------------------------

_ERROR_CODES = {"AE", "AR", "CE", "CR"}
_ERROR_CODE = "207^Application internal error^HL70357"  # HL7 table 0357; the reason itself goes in ERR-8
_ack_ids = itertools.count(1)


def _escape(text: str) -> str:
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return out.replace("~", "\\R\\").replace("\r", " ").replace("\n", " ")[:300]


def _header(raw: bytes) -> list[str]:
    """MSH fields of a message that may not parse (MSH-n at index n), decoded leniently; [] without MSH."""
    if not raw.startswith(b"MSH") or len(raw) < 8 or raw[3:8] != b"|^~\\&":
        return []  # unusual separators: the ACK cannot safely copy fields written with them
    line = raw.split(b"\r", 1)[0].decode("utf-8", "replace")
    return ["MSH", "|", *line.split("|")[1:]]


def _field(fields: list[str], n: int) -> str:
    return fields[n] if n < len(fields) else ""


def build_ack(original: bytes, code: str, reason: str = "", *, application: str = "crosswalk") -> bytes:
    """An ACK for ``original`` (its MSH read leniently, so a broken message can be answered too).

    Not python-hl7's ``Message.create_ack``: that needs a parsed message, and a NAK answers exactly
    the messages that did not parse.
    """
    msh = _header(original)
    sent_by, sent_from = _field(msh, 3), _field(msh, 4)
    event = _field(msh, 9).split("^")[1] if "^" in _field(msh, 9) else ""
    version = _field(msh, 12) or "2.5"
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                application,
                _field(msh, 6),
                sent_by,
                sent_from,
                time.strftime("%Y%m%d%H%M%S%z"),
                "",
                f"ACK^{event}^ACK" if event else "ACK",
                f"ACK{time.time_ns()}{next(_ack_ids)}",
                _field(msh, 11) or "P",
                version,
            ]
        ),
        "|".join(["MSA", code, _field(msh, 10), _escape(reason)] if reason else ["MSA", code, _field(msh, 10)]),
    ]
    if code in _ERROR_CODES:
        # ERR-1 (before v2.5) and ERR-3/4/8 (v2.5 on) both carry the error, so every version can read it
        err1 = "^^^" + _ERROR_CODE.replace("^", "&")
        segments.append(f"ERR|{err1}||{_ERROR_CODE}|E||||{_escape(reason)}")
    return "\r".join(segments).encode("ascii", "replace")


_ACK_TYPES = {"", "AL", "NE", "ER", "SU"}  # HL7 table 0155


def _wants(ack_type: str, success: bool) -> bool:
    ack_type = ack_type.upper()
    return ack_type == "AL" or (ack_type == "ER" and not success) or (ack_type == "SU" and success)


def acknowledgment_code(message: Hl7Message | None, outcome: str) -> str | None:
    """The MSA-1 to answer with, or None for no answer, for an outcome "accept", "error" or "reject".

    Original mode (MSH-15 and MSH-16 empty) always answers AA/AE/AR. Enhanced mode answers with a
    commit ACK (CA/CE/CR) when MSH-15 asks for one; storing the message is all the processing this
    listener does, so when only MSH-16 asks, the application ACK (AA/AE/AR) is sent instead.
    """
    original = {"accept": "AA", "error": "AE", "reject": "AR"}[outcome]
    modes = {message.accept_ack_type.upper(), message.application_ack_type.upper()} if message else set()
    if not modes - {""} or not modes <= _ACK_TYPES:  # absent, or not table 0155: original mode
        return original
    success = outcome == "accept"
    if _wants(message.accept_ack_type, success):
        return "C" + original[1]
    if _wants(message.application_ack_type, success):
        return original
    return None


def answered(message: Hl7Message | None) -> str:
    """Whether a receiver following `acknowledgment_code` answers ``message``: "always", "never" (MSH-15
    and MSH-16 both NE, or one NE and the other empty), or "maybe" (ER: only a failure, SU: only a success)."""
    replies = {acknowledgment_code(message, outcome) is not None for outcome in ("accept", "error", "reject")}
    return "always" if replies == {True} else "never" if replies == {False} else "maybe"


def _lenient_header(raw: bytes) -> Hl7Message | None:
    """What the MSH line alone says about acknowledging a message that cannot be read whole."""
    head = read_messages(raw.replace(b"\n", b"\r").split(b"\r", 1)[0])
    return head[0] if head and head[0].control_id else None


def _answered_for(payload: bytes) -> Hl7Message | None:
    """The message whose MSH-15/16 decide how ``receive`` answers ``payload`` (as `receive` picks it)."""
    messages = read_messages(payload)
    return messages[0] if messages and messages[0].control_id else _lenient_header(payload)


# -- receiving, whatever the transport -----------------------------------------------------------------------------


@dataclass
class Receipt:
    """What became of one payload (an MLLP frame, an HTTP body) and the ACK to answer with."""

    outcome: str  # "accept" (stored), "error" (content cannot be read) or "reject" (resend or give up)
    ack: bytes | None  # the ER7 acknowledgment; None when the sender's MSH-15/16 asked for none
    messages: list[Hl7Message] = field(default_factory=list)  # checked, fields parsed on first use
    refs: list[StoredRef] = field(default_factory=list)  # what ``store`` returned, one per message
    reason: str = ""
    dead_lettered: bool = False

    @property
    def stored(self) -> bool:
        return self.outcome == "accept"


async def receive(
    payload: bytes,
    *,
    store: StoreFn,
    dead_letter: DeadLetterFn,
    application: str = "crosswalk",
    start_index: int = 0,
) -> Receipt:
    """Check ``payload`` (one message or a batch), store each message, and say what to answer.

    Messages are only checked here (MSH, character set, segment structure; ``read_messages``), not
    parsed field by field: that is python-hl7's slow part, left to whoever flattens after the ACK.
    A payload with a message that cannot be read goes whole to ``dead_letter`` and gets AE (AR
    when not even its MSH could be read). A store that raises gets AR: nothing was acknowledged,
    the sender resends (so a store should ignore a sha256 it already holds). ``start_index`` numbers
    the messages within their stream (the frame's position on its connection). Never raises.
    """
    messages = read_messages(payload, start_index=start_index)
    broken = next((m for m in messages if not m.ok), None)
    if not messages or broken is not None:
        reason = broken.error if broken is not None else "empty message: no segments between the frame markers"
        first = messages[0] if messages and messages[0].control_id else None
        outcome = "error" if first is not None else "reject"
        return await refuse(
            payload, reason, dead_letter=dead_letter, message=first, outcome=outcome, application=application
        )
    try:
        refs = [await _call(store, message.raw) for message in messages]
    except Exception as exc:  # noqa: BLE001 - the sender must resend: answer AR, never AA
        log.warning("HL7 store failed: %s", exc)
        reason = f"could not store the message ({type(exc).__name__}: {exc}); resend it"
        ack = _ack(messages[0], "reject", reason, application=application)
        return Receipt("reject", ack, messages, reason=reason)
    return Receipt("accept", _ack(messages[0], "accept", application=application), messages, refs)


async def refuse(
    raw: bytes,
    reason: str,
    *,
    dead_letter: DeadLetterFn,
    message: Hl7Message | None = None,
    outcome: str = "reject",
    application: str = "crosswalk",
) -> Receipt:
    """Hand ``raw`` to ``dead_letter`` with ``reason`` and build the NAK (AR when even that fails)."""
    if message is None:
        message = _lenient_header(raw)
    try:
        await _call(dead_letter, raw, reason)
    except Exception as exc:  # noqa: BLE001 - not even dead-lettered: the sender must keep it and resend
        log.warning("HL7 dead-letter store failed: %s", exc)
        reason = f"{reason}; and it could not be kept ({exc}): resend it"
        return Receipt("reject", _ack(message, "reject", reason, raw, application=application), reason=reason)
    ack = _ack(message, outcome, reason, raw, application=application)
    return Receipt(outcome, ack, [message] if message else [], reason=reason, dead_lettered=True)


def _ack(
    message: Hl7Message | None, outcome: str, reason: str = "", raw: bytes = b"", *, application: str
) -> bytes | None:
    code = acknowledgment_code(message, outcome)
    if code is None:
        return None
    return build_ack(message.raw if message is not None else raw, code, reason, application=application)


# -- the listener -----------------------------------------------------------------------------------------------


@dataclass
class ListenerStats:
    connections: int = 0
    frames: int = 0
    accepted: int = 0  # messages stored and acknowledged
    dead_letters: int = 0  # frames kept in the dead-letter store and answered AE/AR
    store_failures: int = 0  # frames nothing could keep (store or dead-letter store failed): answered AR
    oversized: int = 0
    truncated: int = 0  # connections that closed mid-frame (dead-lettered, no answer possible)


@dataclass
class _Oversized:
    head: bytes
    size: int


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async callback; run a plain one in a worker thread so a blocking store cannot stall the loop."""
    # an object whose __call__ is async (a store class) counts as async too
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    return await result if inspect.isawaitable(result) else result


class GroupCommit:
    """A store for `MLLPServer` that commits the messages arriving together in one transaction.

    ``commit(raws) -> refs`` stores a list of messages durably (one transaction, one fsync) and returns
    one ref per message. Each call waits until the commit holding its message returned, so its ACK
    still leaves only after the message is stored. The first message is committed at once; those that
    arrive while a commit runs wait for it and then go together (at most ``max_messages`` at a time),
    so a message waits for at most the commit in progress and its own. A group that fails is committed
    again message by message, so a message the store refuses fails alone (AR) and the rest are kept.

        store = GroupCommit(my_store.commit)
        server = MLLPServer(store=store, dead_letter=my_store.dead_letter)
    """

    def __init__(self, commit: Callable[[list[bytes]], Sequence[StoredRef]], *, max_messages: int = 500) -> None:
        self.commit, self.max_messages = commit, max_messages
        self.commits = 0  # transactions run, for figures: messages / commits is the mean group size
        self._waiting: list[tuple[bytes, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def __call__(self, raw: bytes) -> StoredRef:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, future))
        if self._writer is None:  # the writer runs while messages wait, then ends
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self.max_messages]
                del self._waiting[: self.max_messages]
                await self._commit(group)
        finally:
            self._writer = None

    async def _commit(self, group: list[tuple[bytes, asyncio.Future]]) -> None:
        self.commits += 1
        try:
            refs = await asyncio.to_thread(self.commit, [raw for raw, _ in group])
        except Exception as exc:  # noqa: BLE001 - handed to the caller: its sender gets AR and resends
            if len(group) > 1:  # which message failed is unknown: each alone, so only that one is refused
                for one in group:
                    await self._commit([one])
            elif not group[0][1].done():
                group[0][1].set_exception(exc)
            return
        for (_, future), ref in zip(group, refs, strict=True):
            if not future.done():  # done: its connection went away meanwhile, nothing to answer
                future.set_result(ref)


@dataclass
class MLLPServer:
    """Accepts HL7 v2 over MLLP on any number of connections; see the module docstring."""

    store: StoreFn
    dead_letter: DeadLetterFn
    host: str = "127.0.0.1"
    port: int = 2575  # 0 picks a free port; ``start()`` returns the bound one
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    idle_timeout: float = 600.0  # seconds a connection may stay silent before it is closed
    on_accepted: AcceptedFn | None = None  # called after the ACK is sent: batching, local-code collection
    application: str = "crosswalk"  # MSH-3 of our ACKs
    stats: ListenerStats = field(default_factory=ListenerStats)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _connections: set[asyncio.Task] = field(default_factory=set, init=False, repr=False)
    _callbacks: set[asyncio.Task] = field(default_factory=set, init=False, repr=False)

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, limit=self.max_message_bytes + len(END_BLOCK) + 1
        )
        return self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            # acknowledged messages still being handed on: let them finish rather than drop them
            await asyncio.gather(*self._callbacks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MLLPServer:
        self.port = await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ---------------------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        self.stats.connections += 1
        received = 0  # messages so far on this connection: each one's index within its stream
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        block = await self._read_frame(reader)
                except asyncio.IncompleteReadError as exc:
                    await self._truncated(exc.partial)
                    return
                if block is None:
                    return
                self.stats.frames += 1
                answer, received = await self._answer(block, received)
                if answer is not None:
                    writer.write(frame(answer))
                    await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one bad connection must never take the listener down
            log.exception("MLLP connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes | _Oversized | None:
        """The next block up to <FS><CR> (None at a clean end of stream), skipping past an oversized one."""
        skipped: list[bytes] = []
        size = 0
        while True:
            try:
                block = await reader.readuntil(END_BLOCK)
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.readexactly(max(exc.consumed, 1))
                if not skipped:
                    skipped.append(chunk[:_DEAD_LETTER_HEAD])
                size += len(chunk)
                continue
            except asyncio.IncompleteReadError as exc:
                if skipped or exc.partial.strip():
                    raise
                return None
            if skipped:
                return _Oversized(skipped[0], size + len(block))
            return block

    async def _truncated(self, partial: bytes) -> None:
        self.stats.truncated += 1
        reason = "connection closed before the end of the frame (<FS><CR>): message truncated, not acknowledged"
        with contextlib.suppress(Exception):
            await _call(self.dead_letter, partial, reason)

    async def _answer(self, block: bytes | _Oversized, received: int) -> tuple[bytes | None, int]:
        if isinstance(block, _Oversized):
            self.stats.oversized += 1
            head = block.head[block.head.find(START_BLOCK) + 1 :]
            reason = f"message of {block.size} bytes exceeds the {self.max_message_bytes}-byte limit; first bytes kept"
            receipt = await refuse(head, reason, dead_letter=self.dead_letter, application=self.application)
        elif (start := block.find(START_BLOCK)) < 0:
            reason = "frame does not begin with <VT> (0x0B)"
            receipt = await refuse(block[:-2], reason, dead_letter=self.dead_letter, application=self.application)
        else:
            payload = block[start + 1 : -len(END_BLOCK)]
            receipt = await receive(
                payload,
                store=self.store,
                dead_letter=self.dead_letter,
                application=self.application,
                start_index=received,
            )
        self._count(receipt)
        if receipt.outcome == "accept" and self.on_accepted is not None:
            asyncio.get_running_loop().call_soon(self._notify, receipt.messages, receipt.refs)
        return receipt.ack, received + max(1, len(receipt.messages))

    def _count(self, receipt: Receipt) -> None:
        if receipt.outcome == "accept":
            self.stats.accepted += len(receipt.messages)
        elif receipt.dead_lettered:
            self.stats.dead_letters += 1
        else:
            self.stats.store_failures += 1

    def _notify(self, messages: list[Hl7Message], refs: list[StoredRef]) -> None:
        async def run() -> None:
            try:
                await _call(self.on_accepted, messages, refs)
            except Exception:  # noqa: BLE001 - the message is stored and acknowledged; log and carry on
                log.exception("MLLP on_accepted callback failed")

        task = asyncio.ensure_future(run())
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)


# -- a sender, for tests and benchmarks -------------------------------------------------------------------------


class MLLPClient:
    """Sends messages in order on one connection and reads their ACKs, waiting for each only where the
    message's MSH-15/16 ask for one (see `answered`).

    async with MLLPClient("127.0.0.1", 2575) as client:
        ack = await client.send(message)
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, quiet: float = 1.0) -> None:
        # timeout: the longest wait for an ACK that must come; quiet: how long a silence means that a
        # message answered only on failure (ER) or only on success (SU) got no answer
        self.host, self.port, self.timeout, self.quiet = host, port, timeout, quiet
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> MLLPClient:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=2**24)
        return self

    async def send(self, message: bytes | str) -> bytes | None:
        """Send one message; its ACK's payload, or None where the receiver sends none."""
        return (await self.send_all([message]))[0]

    async def send_all(self, messages: Sequence[bytes | str]) -> list[bytes | None]:
        """Send messages in order; each one's ACK payload, or None where none came.

        A message that is always answered (original mode, AL) is waited for (up to ``timeout``); one that
        never is (NE) is not; one answered only on failure or only on success (ER, SU) is not waited for
        either: answers are read as they come, each matched by MSA-2 to the first message waiting with
        that control id (the receiver answers in order, so the ones before it got none), and after the
        last message the client reads until ``quiet`` seconds pass without an answer.
        """
        acks: list[bytes | None] = [None] * len(messages)
        waiting: list[tuple[int, str]] = []  # (position, control id) of sent messages an answer may be for
        for position, message in enumerate(messages):
            data = frame(message)
            head = _answered_for(data[len(START_BLOCK) : -len(END_BLOCK)])
            self._writer.write(data)
            await self._writer.drain()
            expect = answered(head)
            if expect == "never":
                continue
            waiting.append((position, head.control_id if head is not None else ""))
            # an ACK that must come is waited for; otherwise only what has already arrived is read
            await self._collect(acks, waiting, position if expect == "always" else None, 0.0)
        await self._collect(acks, waiting, None, self.quiet)
        return acks

    async def _collect(
        self, acks: list[bytes | None], waiting: list[tuple[int, str]], awaited: int | None, silence: float
    ) -> None:
        """Read answers into ``acks`` until ``awaited`` has its own (TimeoutError after ``timeout``), or
        without one awaited, until nothing waits or ``silence`` seconds pass without an answer."""
        while waiting and (awaited is None or waiting[-1][0] == awaited):
            try:
                async with asyncio.timeout(self.timeout if awaited is not None else silence):
                    ack = await self._read()
            except TimeoutError:
                if awaited is not None:
                    raise
                return
            control_id = _msa_field(ack, 2)
            matched = [k for k, (_, sent) in enumerate(waiting) if sent == control_id]
            # an answer naming no waiting message (an unreadable one's NAK) is the awaited one's, else the oldest's
            k = matched[0] if matched else (len(waiting) - 1 if awaited is not None else 0)
            acks[waiting[k][0]] = ack
            del waiting[: k + 1]

    async def _read(self) -> bytes:
        block = await self._reader.readuntil(END_BLOCK)
        return block[block.find(START_BLOCK) + 1 : -len(END_BLOCK)]

    async def send_raw(self, data: bytes) -> bytes:
        """Send bytes exactly as given (for malformed frames) and return the next ACK's payload."""
        self._writer.write(data)
        await self._writer.drain()
        async with asyncio.timeout(self.timeout):
            return await self._read()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def __aenter__(self) -> MLLPClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def send_messages(
    host: str, port: int, messages: Sequence[bytes | str], *, timeout: float = 30.0, quiet: float = 1.0
) -> list[bytes | None]:
    """Blocking helper: send messages over one connection; their ACKs, None where the receiver sent none
    (MSH-15/16 asked for none, or for one only on failure or only on success; see `MLLPClient.send_all`)."""

    async def run() -> list[bytes | None]:
        async with MLLPClient(host, port, timeout=timeout, quiet=quiet) as client:
            return await client.send_all(messages)

    return asyncio.run(run())
