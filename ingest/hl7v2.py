"""HL7 v2 (ER7) messages in, flat rows out, each row carrying the message it came from.

Parsing is python-hl7's (``hl7``): it is lenient (reads 2.3 to 2.8 and the non-conformant messages
real interface engines send, taking the separators from MSH-1/MSH-2), pure Python with no schema
tables to load, and fast: on this project's sample ORUs it parsed 106 messages/s where hl7apy 1.3.5
managed 9.5 (4.4 with message groups), on the same loaded 2-core machine; both read all 139 public
samples. Structure is checked separately, in ``ingest.conformance``.

What this module adds is the framing around it: line-ending normalisation, FHS/BHS batch wrappers,
character sets, cheap checks first and the field-by-field parse only on first use (an MLLP listener
acknowledges after the checks), and a reason instead of an exception for a message that cannot be read.

    messages = read_file("feed.hl7")            # or read_messages(raw_bytes)
    rows = [row for m in messages if m.ok for row in flatten(m)]
    dead = [(m.raw, m.error) for m in messages if not m.ok]
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hl7
from hl7.util import unescape

_BOM = b"\xef\xbb\xbf"
_WRAPPERS = (b"FHS", b"BHS", b"FTS", b"BTS")
# MSH-18 values (HL7 table 0211) -> Python codecs; anything else is read as UTF-8 (ASCII's superset)
_CHARSETS = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
}
# python-hl7 builds an object per field, repetition and component (~20 us each): a message with more
# delimiters than this is refused with a reason instead of holding a CPU for seconds
MAX_DELIMITERS = 100_000

Row = dict[str, str | int | None]


@dataclass
class Hl7Message:
    """One message of a file or stream: its bytes, what identifies it, and why it failed if it did."""

    index: int  # 0-based position within the file or stream it came in
    raw: bytes  # the message itself, segments separated by CR (as MLLP carries it)
    sha256: str  # of ``raw``: the key of the stored message behind every row
    line: int = 1  # first line of the message in its file
    control_id: str = ""  # MSH-10
    message_type: str = ""  # MSH-9.1^MSH-9.2, e.g. "ORU^R01"
    version: str = ""  # MSH-12
    site: str = ""  # MSH-4.1, the sending facility
    sending_application: str = ""  # MSH-3.1
    sent_at: str = ""  # MSH-7
    accept_ack_type: str = ""  # MSH-15: empty means original acknowledgment mode
    application_ack_type: str = ""  # MSH-16
    error: str | None = None  # why the message could not be read; None when it was
    _text: str | None = field(default=None, repr=False, compare=False)
    _parsed: hl7.Message | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def parsed(self) -> hl7.Message | None:
        """python-hl7's parse tree, built on first use (the checks before an ACK do not need it)."""
        if self._parsed is None and self.error is None and self._text is not None:
            try:
                self._parsed = hl7.parse(self._text)
            except Exception as exc:  # noqa: BLE001 - a reason for the dead-letter store, never an exception
                self.error = f"python-hl7 could not read the message: {type(exc).__name__}: {exc}"[:500]
        return self._parsed

    @property
    def message_code(self) -> str:
        """MSH-9.1 alone ("ORU"), which picks the flattening."""
        return self.message_type.split("^", 1)[0]

    def provenance(self) -> Row:
        return {
            "message_control_id": self.control_id,
            "message_sha256": self.sha256,
            "message_index": self.index,
            "message_type": self.message_type,
            "hl7_version": self.version,
            "site": self.site,
            "sending_application": self.sending_application,
            "message_datetime": self.sent_at,
        }


def _normalise(data: bytes) -> bytes:
    if data.startswith(_BOM):
        data = data[3:]
    return data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def split_messages(data: bytes) -> list[tuple[bytes, int]]:
    """Cut a file or stream into (message bytes, first line) pairs.

    Framing only, not parsing (python-hl7's ``split_file`` works on decoded text, where a message in
    another character set would already be lost): CR, LF and CRLF all end a segment, a BOM and the
    FHS/BHS/BTS/FTS batch wrappers are dropped, and every MSH starts a new message. Text before the
    first MSH becomes a message of its own so it gets a reason instead of vanishing.
    """
    messages: list[tuple[list[bytes], int]] = []
    for line_no, segment in enumerate(_normalise(data).split(b"\r"), start=1):
        # trailing spaces may be data; a BOM can start any concatenated file
        segment = segment.strip(b"\x00\x0b\x1c").lstrip(b" \t").removeprefix(_BOM)
        if not segment.strip() or segment[:3] in _WRAPPERS:
            continue
        if segment.startswith(b"MSH") or not messages:
            messages.append(([segment], line_no))
        else:
            messages[-1][0].append(segment)
    return [(b"\r".join(segments), line) for segments, line in messages]


def read_messages(data: bytes | str, *, start_index: int = 0) -> list[Hl7Message]:
    """Every message in ``data`` (one message, a batch or a whole file), checked or with its reason.

    Framing, MSH, character set and segment structure are checked here, which is what an MLLP
    listener needs before it acknowledges; fields are parsed on first use (``flatten``, ``.parsed``).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return [parse_message(raw, index=start_index + i, line=line) for i, (raw, line) in enumerate(split_messages(data))]


def read_file(path: str | Path) -> list[Hl7Message]:
    """Every message of an ER7 file; a message's error names the file and line where it starts."""
    path = Path(path)
    messages = read_messages(path.read_bytes())
    for message in messages:
        message.parsed  # noqa: B018 - parse now, so a failure names its file and line
        if message.error:
            message.error = f"{path}:{message.line}: {message.error}"
    return messages


def parse_message(raw: bytes, *, index: int = 0, line: int = 1) -> Hl7Message:
    """One message's bytes -> ``Hl7Message``; never raises, a message that cannot be read gets ``error``."""
    raw = _normalise(raw).strip(b"\r")
    message = Hl7Message(index=index, raw=raw, sha256=hashlib.sha256(raw).hexdigest(), line=line)
    try:
        message.error = _check(message)
    except Exception as exc:  # noqa: BLE001 - a reason for the dead-letter store, never an escaped exception
        message.error = f"could not read the message: {type(exc).__name__}: {exc}"[:500]
    if message.error:
        message._text = None
    return message


def message_text(raw: bytes) -> str:
    """A message as text, in the character set its MSH-18 declares (UTF-8 otherwise); bytes that do not
    decode are replaced, so even a message that cannot be read can be shown."""
    message = parse_message(raw)
    return message._text if message._text is not None else raw.decode("utf-8", "replace")


def _check(message: Hl7Message) -> str | None:
    """What must hold before a message can be acknowledged; all byte-level, no field-by-field parse."""
    raw = message.raw
    if not raw:
        return "empty message: nothing between the frame markers"
    if not raw.startswith(b"MSH") or len(raw) < 8:
        return f"does not start with an MSH segment (starts with {raw[:12]!r}): every message must begin with MSH"
    separator = raw[3:4]
    if separator.isalnum() or separator in (b"\r", b" "):
        return f"MSH-1 field separator {separator!r} is not a punctuation character (expected '|')"
    msh_line = raw.split(b"\r", 1)[0]
    msh_fields = msh_line.split(separator)
    encoding_chars = msh_fields[1] if len(msh_fields) > 1 else b""
    if not 3 <= len(encoding_chars) <= 5 or len(set(encoding_chars)) != len(encoding_chars):
        return f"MSH-2 encoding characters {encoding_chars[:8]!r} are not 4 distinct characters (expected '^~\\&')"
    # MSH-18 may repeat (~): the first repetition is the default character set
    charset = msh_fields[17] if len(msh_fields) > 17 else b""
    charset_field = charset.split(encoding_chars[1:2])[0].decode("ascii", "replace")
    codec = _CHARSETS.get(charset_field.strip().upper(), "utf-8")
    _read_header(message, msh_line.decode(codec, "replace"), chr(separator[0]), chr(encoding_chars[0]))
    delimiters = len(raw) - len(raw.translate(None, separator + encoding_chars[:2] + encoding_chars[3:4]))
    if delimiters > MAX_DELIMITERS:
        return (
            f"{delimiters} field/component/repetition delimiters exceed the {MAX_DELIMITERS} limit: split the message"
        )
    bad = _bad_segment(separator).search(raw)
    if bad is not None:
        segment = raw[bad.start() + 1 :].split(b"\r", 1)[0]
        return f"segment {segment[:20]!r} does not start with a 3-character segment id and the field separator"
    try:
        message._text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        return (
            f"not valid {codec} at byte {exc.start} (MSH-18 says {charset_field or 'nothing'!r}): "
            "declare the character set in MSH-18 (e.g. 8859/1) or send UTF-8"
        )
    if not message.message_code:
        return "MSH-9 (message type) is empty: the sender must say what the message is, e.g. ORU^R01"
    return None


@functools.cache
def _bad_segment(separator: bytes) -> re.Pattern[bytes]:
    """A segment start not followed by an id (A-Z, then 2 of A-Z0-9) and the field separator (or the end)."""
    return re.compile(rb"\r(?![A-Z][A-Z0-9]{2}(?:" + re.escape(separator) + rb"|\r|$))")


def _read_header(message: Hl7Message, msh_line: str, separator: str, component_separator: str) -> None:
    """Identify a message from its MSH line alone: cheap, and possible even for one that fails later."""
    fields = msh_line.split(separator)

    def get(n: int, comp: int = 0) -> str:  # MSH-n is fields[n - 1]: MSH-1 is the separator itself
        parts = fields[n - 1].split(component_separator) if n - 1 < len(fields) else []
        return parts[comp] if comp < len(parts) else ""

    message.control_id, message.version, message.site = get(10), get(12), get(4)
    message.sending_application, message.sent_at = get(3), get(7)
    message.accept_ack_type, message.application_ack_type = get(15), get(16)
    message.message_type = "^".join(filter(None, (get(9), get(9, 1))))


# -- field access -------------------------------------------------------------------------------------------------


def component(msg: hl7.Message, segment, field_no: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
    """The unescaped text at FIELD.REP.COMP.SUB of ``segment``, "" where the message has nothing there."""
    if segment is None or field_no >= len(segment):
        return ""
    node = segment[field_no]
    for position in (rep, comp, sub):
        if isinstance(node, str):
            if position != 1:
                return ""
            continue
        if position > len(node):
            return ""
        node = node[position - 1]
    while not isinstance(node, str):
        node = node[0] if len(node) else ""
    if segment[0][0] == "MSH" and field_no in (1, 2):
        return node
    return _unescape(msg, node)


def _unescape(msg: hl7.Message, text: str) -> str:
    if msg.esc not in text:
        return text
    try:
        return unescape(msg, text)
    except (ValueError, IndexError):  # a malformed escape such as \.sp\ without its count: keep the text as sent
        return text


def repetitions(segment, field_no: int) -> int:
    if segment is None or field_no >= len(segment):
        return 0
    node = segment[field_no]
    return 1 if isinstance(node, str) else max(1, len(node))


def render(msg: hl7.Message, segment, field_no: int) -> str:
    """A whole field as text: repetitions joined by '~', components by '^', each leaf unescaped."""
    if segment is None or field_no >= len(segment):
        return ""
    sep = msg.separators  # "\r|~^&"

    def walk(node, depth: int) -> str:
        if isinstance(node, str):
            return _unescape(msg, node)
        parts = [walk(child, depth + 1) for child in node]
        while parts and parts[-1] == "":
            parts.pop()
        return sep[min(depth, 4)].join(parts)

    return walk(segment[field_no], 2)


def _value(msg: hl7.Message, obx) -> str:
    """OBX-5 as text; a structured numeric (SN: comparator^num^separator^num) reads as "<10" or "10-20"."""
    if component(msg, obx, 2).upper() == "SN" and repetitions(obx, 5) == 1:
        return "".join(component(msg, obx, 5, c) for c in (1, 2, 3, 4)).strip()
    return render(msg, obx, 5)


def coded(msg: hl7.Message, segment, field_no: int, prefix: str, rep: int = 1) -> Row:
    """A CE/CWE/CNE field as ``{prefix}_code/_text/_system`` plus the alternate triple (components 4-6)."""
    get = lambda c: component(msg, segment, field_no, c, rep=rep)  # noqa: E731
    return {
        f"{prefix}_code": get(1),
        f"{prefix}_text": get(2),
        f"{prefix}_system": get(3),
        f"{prefix}_alt_code": get(4),
        f"{prefix}_alt_text": get(5),
        f"{prefix}_alt_system": get(6),
    }


# -- flattening ---------------------------------------------------------------------------------------------------


def _patient(msg: hl7.Message, pid, pv1) -> Row:
    c = lambda seg, f, comp=1: component(msg, seg, f, comp)  # noqa: E731
    return {
        "patient_id": c(pid, 3),
        "patient_id_authority": c(pid, 3, 4),
        "patient_birth_date": c(pid, 7),
        "patient_sex": c(pid, 8),
        "patient_class": c(pv1, 2),
        "location": c(pv1, 3),
        "location_facility": c(pv1, 3, 4),
        "visit_number": c(pv1, 19),
    }


def _first(msg: hl7.Message, segment_id: str):
    for segment in msg:
        if segment[0][0] == segment_id:
            return segment
    return None


def _segments(message: Hl7Message) -> Iterator[tuple[str, Any, Callable[[], Row]]]:
    """Each segment with its id and a new-row maker: the message's provenance and the patient context in
    force there (the latest PID, and the PV1 after it), which every flattening starts a row with."""
    msg = message.parsed
    pid = pv1 = None
    for segment in msg:
        sid = segment[0][0]
        if sid == "PID":
            pid, pv1 = segment, None
        elif sid == "PV1":
            pv1 = segment
        yield sid, segment, lambda pid=pid, pv1=pv1: {**message.provenance(), **_patient(msg, pid, pv1)}


def _result_rows(message: Hl7Message) -> list[Row]:
    """ORU/OUL: one row per OBX, with its order (OBR-4), specimen and patient context."""
    msg = message.parsed
    rows: list[Row] = []
    obr = None
    group: list[Row] = []  # rows of the current OBR, waiting for an SPM that may follow their OBX
    specimen: str = ""

    def close_group() -> None:
        for row in group:
            row["specimen_type"] = specimen or row["specimen_type"]
        group.clear()

    for sid, segment, new_row in _segments(message):
        if sid == "OBR":
            close_group()
            obr, specimen = segment, ""
        elif sid == "SPM" and not specimen:
            specimen = component(msg, segment, 4)
        elif sid == "OBX":
            row = new_row()
            row.update(coded(msg, obr, 4, "order"))
            row.update(
                placer_order_number=component(msg, obr, 2),
                filler_order_number=component(msg, obr, 3),
                specimen_type=component(msg, obr, 15),  # SPS before v2.5; SPM-4 replaces it below
                observation_set_id=component(msg, segment, 1),
                value_type=component(msg, segment, 2),
            )
            row.update(coded(msg, segment, 3, "observation"))
            row.update(
                observation_sub_id=component(msg, segment, 4),
                value=_value(msg, segment),
                unit_code=component(msg, segment, 6),
                unit_text=component(msg, segment, 6, 2),
                unit_system=component(msg, segment, 6, 3),
                reference_range=component(msg, segment, 7),
                abnormal_flag="~".join(
                    filter(None, (component(msg, segment, 8, rep=r) for r in range(1, repetitions(segment, 8) + 1)))
                ),
                result_status=component(msg, segment, 11),
                observation_datetime=component(msg, segment, 14) or component(msg, obr, 7),
                row_kind="result",
            )
            rows.append(row)
            group.append(row)
    close_group()
    return rows


def _admission_rows(message: Hl7Message) -> list[Row]:
    """ADT: one row per message, with the first diagnosis; ``diagnosis_rows`` gives every DG1."""
    msg = message.parsed
    pid, pv1, evn = _first(msg, "PID"), _first(msg, "PV1"), _first(msg, "EVN")
    dg1 = _first(msg, "DG1")
    row = message.provenance()
    row.update(_patient(msg, pid, pv1))
    row.update(
        event_type=component(msg, evn, 1) or component(msg, msg.segment("MSH"), 9, 2),
        event_datetime=component(msg, evn, 2),
        patient_race=component(msg, pid, 10),
        patient_ethnicity=component(msg, pid, 22),
        patient_postal_code=component(msg, pid, 11, 5),
        death_indicator=component(msg, pid, 30),
        admission_type=component(msg, pv1, 4),
        attending_doctor=component(msg, pv1, 7),
        hospital_service=component(msg, pv1, 10),
        admit_source=component(msg, pv1, 14),
        discharge_disposition=component(msg, pv1, 36),
        admit_datetime=component(msg, pv1, 44),
        discharge_datetime=component(msg, pv1, 45),
        diagnosis_count=sum(1 for s in msg if s[0][0] == "DG1"),
    )
    row.update(coded(msg, dg1, 3, "diagnosis"))
    row["row_kind"] = "admission"
    return [row]


def _order_rows(message: Hl7Message) -> list[Row]:
    """ORM/OML/OMG: one row per OBR (the ordered test) with its ORC."""
    msg = message.parsed
    rows: list[Row] = []
    orc = None
    for sid, segment, new_row in _segments(message):
        if sid == "ORC":
            orc = segment
        elif sid == "OBR":
            row = new_row()
            row.update(
                order_control=component(msg, orc, 1),
                placer_order_number=component(msg, segment, 2) or component(msg, orc, 2),
                filler_order_number=component(msg, segment, 3) or component(msg, orc, 3),
                order_status=component(msg, orc, 5),
                order_datetime=component(msg, orc, 9) or component(msg, segment, 6),
                priority=component(msg, segment, 5) or component(msg, orc, 7, 6),
                ordering_provider=component(msg, segment, 16) or component(msg, orc, 12),
                specimen_type=component(msg, segment, 15),
            )
            row.update(coded(msg, segment, 4, "order"))
            row["row_kind"] = "order"
            rows.append(row)
    return rows


def _immunization_rows(message: Hl7Message) -> list[Row]:
    """VXU: one row per RXA (a dose given or refused), with its route and body site (RXR)."""
    msg = message.parsed
    rows: list[Row] = []
    current: Row | None = None
    for sid, segment, new_row in _segments(message):
        if sid == "RXA":
            current = new_row()
            current.update(coded(msg, segment, 5, "vaccine"))
            current.update(
                administered_start=component(msg, segment, 3),
                administered_amount=component(msg, segment, 6),
                administered_unit=component(msg, segment, 7),
                lot_number=component(msg, segment, 15),
                expiration_date=component(msg, segment, 16),
                manufacturer=component(msg, segment, 17),
                manufacturer_system=component(msg, segment, 17, 3),
                completion_status=component(msg, segment, 20),
                action_code=component(msg, segment, 21),
                route="",
                body_site="",
                row_kind="immunization",
            )
            rows.append(current)
        elif sid == "RXR" and current is not None:
            current["route"] = component(msg, segment, 1)
            current["body_site"] = component(msg, segment, 2)
    return rows


def diagnosis_rows(message: Hl7Message) -> list[Row]:
    """One row per DG1 segment, whatever the message type (ADT, BAR, ORM, OML...)."""
    msg = message.parsed
    rows: list[Row] = []
    for sid, segment, new_row in _segments(message):
        if sid == "DG1":
            row = new_row()
            row.update(coded(msg, segment, 3, "diagnosis"))
            row.update(
                diagnosis_set_id=component(msg, segment, 1),
                diagnosis_coding_method=component(msg, segment, 2),
                diagnosis_description=component(msg, segment, 4),
                diagnosis_datetime=component(msg, segment, 5),
                diagnosis_type=component(msg, segment, 6),
                row_kind="diagnosis",
            )
            rows.append(row)
    return rows


_FLATTENERS = {
    "ORU": _result_rows,
    "OUL": _result_rows,
    "ADT": _admission_rows,
    "ORM": _order_rows,
    "OML": _order_rows,
    "OMG": _order_rows,
    "VXU": _immunization_rows,
}

#: the kinds of row ``flatten`` gives, and the message types that give them
ROW_KINDS = {"result": ("ORU", "OUL"), "admission": ("ADT",), "order": ("ORM", "OML", "OMG"), "immunization": ("VXU",)}


def flatten(message: Hl7Message, *, diagnoses: bool = True) -> list[Row]:
    """Rows for one parsed message: per OBX (results), per message (ADT), per OBR (orders), per RXA (VXU).

    With ``diagnoses``, every DG1 also gives a ``row_kind="diagnosis"`` row. Other message types give
    only their diagnoses. Every row starts with the message's provenance columns. A message that did
    not parse gives no rows.
    """
    if not message.ok or message.parsed is None:
        return []
    flattener = _FLATTENERS.get(message.message_code)
    rows = flattener(message) if flattener else []
    if diagnoses:
        rows.extend(diagnosis_rows(message))
    return rows


def flatten_all(messages: Iterable[Hl7Message], *, diagnoses: bool = True) -> list[Row]:
    return [row for message in messages for row in flatten(message, diagnoses=diagnoses)]
