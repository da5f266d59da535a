"""Structural checks of HL7 v2 messages: what a sender left out or wrote wrong, as plain findings.

Messages that parse can still be unfit: an ORU without OBX, a result without its status, a
numeric result that is not a number, an abnormal flag outside HL7 table 0078. Each such problem
is a ``Finding`` (counted per sending facility by ``count_by_site``) instead of a silent drop, so
a monitor can alert on a feed whose conformance gets worse.

    findings = check_all(messages)
    for record in count_by_site(findings): ...   # {"site", "message_type", "rule", "location", "count"}
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ingest.hl7v2 import Hl7Message, component

SUPPORTED_VERSIONS = re.compile(r"^2\.(3|3\.1|4|5|5\.1|6|7|7\.1|8|8\.1|8\.2)$")
_TIMESTAMP = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")

# HL7 tables the checks use (v2.8 values; earlier versions use subsets of them)
TABLES = {
    "0001": {"F", "M", "O", "U", "A", "N", "C"},  # administrative sex
    "0004": {"E", "I", "O", "P", "R", "B", "C", "N", "U"},  # patient class
    "0078": {  # interpretation codes (abnormal flags)
        *("L", "H", "LL", "HH", "<", ">", "N", "A", "AA", "U", "D", "B", "W", "S", "R", "I", "MS", "VS"),
        *("NEG", "POS", "IND", "DET", "ND", "AC", "RR", "QCF", "TOX", "NR", "HU", "LU", "HX", "LX", "IE", "NA"),
        *("CAR", "EX", "EXP", "H>", "L<", "LL<", "HH>", "NCL", "SDD", "SYN-R", "SYN-S", "WR", "E", "IND"),
    },
    "0085": {"C", "D", "F", "I", "N", "O", "P", "R", "S", "U", "W", "X", "A"},  # observation result status
    "0125": {  # value types
        *("AD", "CE", "CF", "CK", "CN", "CNE", "CP", "CWE", "CX", "DR", "DT", "DTM", "ED", "FT", "ID", "IS"),
        *("MA", "MO", "NA", "NM", "PN", "RP", "SN", "ST", "TM", "TN", "TS", "TX", "XAD", "XCN", "XON"),
        *("XPN", "XTN", "CM", "NR", "EI", "HD", "SAD"),
    },
    "0119": {  # order control codes
        *("AF", "CA", "CH", "CN", "CR", "DC", "DE", "DF", "DR", "FU", "HD", "HR", "LI", "MC", "NA", "NW"),
        *("OC", "OD", "OE", "OF", "OH", "OK", "OP", "OR", "PA", "PR", "PY", "RE", "RF", "RL", "RO", "RP"),
        *("RQ", "RR", "RU", "SC", "SN", "SR", "SS", "UA", "UC", "UD", "UF", "UH", "UM", "UN", "UR", "UX"),
        *("XO", "XR", "XX"),
    },
    "0322": {"CP", "RE", "NA", "PA"},  # completion status
    "0323": {"A", "D", "U"},  # action code
    "0103": {"D", "P", "T"},  # processing id
}

# message code -> segments that must be present
REQUIRED_SEGMENTS = {
    "ORU": ("PID", "OBR", "OBX"),
    "OUL": ("OBX",),
    "ADT": ("EVN", "PID"),
    "ORM": ("PID", "ORC"),
    "OML": ("PID", "ORC", "OBR"),
    "VXU": ("PID", "RXA"),
}
# segment -> fields that must be valued wherever the segment appears
REQUIRED_FIELDS = {
    "MSH": (7, 9, 10, 11, 12),
    "PID": (3,),
    "OBR": (4,),
    "OBX": (3, 11),
    "ORC": (1,),
    "RXA": (3, 5),
    "DG1": (3,),
}
# (segment, field) -> table it must come from
TABLE_FIELDS = {
    ("MSH", 11): "0103",
    ("PID", 8): "0001",
    ("PV1", 2): "0004",
    ("OBX", 2): "0125",
    ("OBX", 8): "0078",
    ("OBX", 11): "0085",
    ("ORC", 1): "0119",
    ("RXA", 20): "0322",
    ("RXA", 21): "0323",
}
# (segment, field) that must be an HL7 timestamp (DT/DTM/TS)
TIMESTAMP_FIELDS = (("MSH", 7), ("PID", 7), ("OBX", 14), ("OBR", 7), ("RXA", 3), ("EVN", 2), ("DG1", 5))


@dataclass(frozen=True)
class Finding:
    """One structural problem of one message."""

    site: str  # MSH-4 of the message
    message_type: str
    message_control_id: str
    message_sha256: str
    message_index: int
    rule: str  # unreadable | version | required_segment | required_field | table_value | data_type
    location: str  # "OBX[2]-8" (second OBX, field 8), "PID", "MSH-12"
    detail: str
    severity: str = "error"  # "warning" for what readers usually cope with

    def as_dict(self) -> dict:
        return asdict(self)


def check(message: Hl7Message) -> list[Finding]:
    """Every structural finding of one message (a message that did not parse gives one ``unreadable``)."""

    def finding(rule: str, location: str, detail: str, severity: str = "error") -> Finding:
        return Finding(
            message.site,
            message.message_type,
            message.control_id,
            message.sha256,
            message.index,
            rule,
            location,
            detail,
            severity,
        )

    if not message.ok or message.parsed is None:
        return [finding("unreadable", "message", message.error or "could not be parsed")]
    msg = message.parsed
    findings: list[Finding] = []
    if message.version and not SUPPORTED_VERSIONS.match(message.version):
        findings.append(finding("version", "MSH-12", f"version {message.version!r} is not 2.3-2.8", "warning"))
    present = Counter(segment[0][0] for segment in msg)
    for segment_id in REQUIRED_SEGMENTS.get(message.message_code, ()):
        if not present[segment_id]:
            findings.append(finding("required_segment", segment_id, f"{message.message_type} without a {segment_id}"))
    seen: Counter = Counter()
    for segment in msg:
        segment_id = segment[0][0]
        seen[segment_id] += 1
        where = segment_id if present[segment_id] == 1 else f"{segment_id}[{seen[segment_id]}]"
        findings.extend(_check_segment(msg, segment, segment_id, where, finding))
    return findings


def _check_segment(msg, segment, segment_id: str, where: str, finding) -> list[Finding]:
    out: list[Finding] = []
    for number in REQUIRED_FIELDS.get(segment_id, ()):
        if not component(msg, segment, number) and not component(msg, segment, number, 2):
            out.append(finding("required_field", f"{where}-{number}", f"{segment_id}-{number} is empty"))
    for (table_segment, number), table in TABLE_FIELDS.items():
        if table_segment != segment_id:
            continue
        value = component(msg, segment, number)
        if value and value.upper() not in TABLES[table]:
            severity = "warning" if table in ("0078",) else "error"
            detail = f"{segment_id}-{number} {value!r} is not in HL7 table {table}"
            out.append(finding("table_value", f"{where}-{number}", detail, severity))
    for timestamp_segment, number in TIMESTAMP_FIELDS:
        if timestamp_segment == segment_id:
            value = component(msg, segment, number)
            if value and not _TIMESTAMP.match(value):
                detail = (
                    f"{segment_id}-{number} {value[:40]!r} is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ])"
                )
                out.append(finding("data_type", f"{where}-{number}", detail))
    if segment_id == "OBX":
        out.extend(_check_value(msg, segment, where, finding))
    return out


def _check_value(msg, obx, where: str, finding) -> list[Finding]:
    value_type, value = component(msg, obx, 2).upper(), component(msg, obx, 5)
    if not value:
        return []
    if not value_type:
        return [finding("required_field", f"{where}-2", "OBX-2 (value type) is empty while OBX-5 holds a value")]
    if value_type == "NM" and not _NUMBER.match(value.strip()):
        return [finding("data_type", f"{where}-5", f"OBX-5 {value[:40]!r} is not a number but OBX-2 says NM")]
    if value_type in ("DT", "DTM", "TS") and not _TIMESTAMP.match(value):
        return [
            finding("data_type", f"{where}-5", f"OBX-5 {value[:40]!r} is not a date/time but OBX-2 says {value_type}")
        ]
    return []


def check_all(messages: Iterable[Hl7Message]) -> list[Finding]:
    return [finding for message in messages for finding in check(message)]


def count_by_site(findings: Iterable[Finding]) -> list[dict]:
    """Findings counted per sending facility, message type, rule and location (most frequent first)."""
    counts = Counter(
        (f.site, f.message_type, f.rule, f.location.split("[")[0] + _field_suffix(f.location), f.severity)
        for f in findings
    )
    return [
        {"site": site, "message_type": kind, "rule": rule, "location": location, "severity": severity, "count": n}
        for (site, kind, rule, location, severity), n in counts.most_common()
    ]


def messages_by_site(messages: Iterable[Hl7Message]) -> dict[str, int]:
    """How many messages each sending facility sent: the denominator for a conformance rate."""
    return dict(Counter(message.site for message in messages))


def _field_suffix(location: str) -> str:
    """'OBX[3]-8' and 'OBX-8' count together as 'OBX-8'."""
    return location[location.index("]") + 1 :] if "]" in location else ""
