"""Reading ER7: framing, batches, charsets, escapes, flattening per message type, reasons for broken input."""

from __future__ import annotations

import hashlib
import random

from hl7_messages import HL7_SAMPLES, oru, sample_files

from ingest import conformance, hl7v2

GLUCOSE = "NM|GLU^Glucose^L||5.4|mmol/L^^UCUM|3.9-6.1|N|||F|||20240105093000"


def test_every_sample_parses_and_flattens():
    messages = [m for path in sample_files() for m in hl7v2.read_file(path)]
    assert len(messages) == len(sample_files())
    assert all(m.ok for m in messages), [m.error for m in messages if not m.ok]
    assert {m.version for m in messages} >= {"2.3", "2.5", "2.5.1", "2.6", "2.8"}
    kinds = {row["row_kind"] for row in hl7v2.flatten_all(messages)}
    assert kinds == {"result", "admission", "order", "immunization", "diagnosis"}


def test_oru_gives_one_row_per_obx_with_its_order_specimen_and_patient():
    messages = hl7v2.read_file(HL7_SAMPLES / "LAB-ORU-1.hl7")
    rows = hl7v2.flatten(messages[0])
    assert len(rows) == sum(line.startswith(b"OBX") for line in messages[0].raw.split(b"\r")) == 10
    erythrocytes = rows[1]
    assert erythrocytes["observation_code"] == "11273-0"
    assert erythrocytes["observation_text"] == "ERYTHROCYTES"
    assert erythrocytes["observation_system"] == "LN"
    assert (erythrocytes["value_type"], erythrocytes["value"], erythrocytes["unit_code"]) == ("NM", "4.06", "tera.l-1")
    assert (erythrocytes["abnormal_flag"], erythrocytes["result_status"]) == ("N", "P")
    assert erythrocytes["observation_datetime"] == "20141006062700+0700"
    assert erythrocytes["order_code"] == "24317-0"
    assert erythrocytes["specimen_type"] == "BLD"  # from the SPM that follows the OBX (v2.5 layout)
    assert erythrocytes["patient_id"] == "10006579"
    assert erythrocytes["message_control_id"] == "182"
    assert erythrocytes["message_sha256"] == hashlib.sha256(messages[0].raw).hexdigest()
    assert rows[5]["order_code"] == "26464-8"  # the second OBR's results carry the second order


def test_columns_are_stable_across_messages_of_a_kind():
    rows = hl7v2.flatten_all(m for path in sample_files() for m in hl7v2.read_file(path))
    by_kind: dict[str, set] = {}
    for row in rows:
        by_kind.setdefault(row["row_kind"], set()).add(tuple(row))
    assert all(len(shapes) == 1 for shapes in by_kind.values()), by_kind.keys()


def test_a_file_of_several_messages_keeps_each_ones_index_line_and_digest(tmp_path):
    parts = [(HL7_SAMPLES / name).read_bytes() for name in ("ADT04-23.hl7", "ADT-A01-01.hl7", "LAB-ORU-2.hl7")]
    combined = tmp_path / "combined.hl7"
    combined.write_bytes(b"\n".join(parts))
    messages = hl7v2.read_file(combined)
    assert [m.index for m in messages] == [0, 1, 2]
    assert [m.line for m in messages] == [
        1,
        1 + parts[0].count(b"\n") + 1,
        1 + parts[0].count(b"\n") + parts[1].count(b"\n") + 2,
    ]
    assert [m.message_type for m in messages] == ["ADT^A04", "ADT^A01", "ORU^R01"]
    assert len({m.sha256 for m in messages}) == 3
    rows = hl7v2.flatten_all(messages, diagnoses=False)
    assert {r["message_index"] for r in rows} == {0, 1, 2}
    assert [r["event_type"] for r in rows if r["row_kind"] == "admission"] == ["A04", "A01"]


def test_cr_lf_and_crlf_read_the_same():
    text = oru(GLUCOSE, GLUCOSE)
    variants = [text, text.replace("\r", "\n"), text.replace("\r", "\r\n"), "\ufeff" + text + "\r\n"]
    digests = {hl7v2.read_messages(v)[0].sha256 for v in variants}
    rows = [hl7v2.flatten(hl7v2.read_messages(v)[0]) for v in variants]
    assert len(digests) == 1
    assert all(r == rows[0] for r in rows)


def test_batch_wrappers_are_dropped_and_messages_split():
    batch = "\r".join(
        ["FHS|^~\\&|LIS|NORTH", "BHS|^~\\&|LIS|NORTH", oru(GLUCOSE, control_id="A"), oru(GLUCOSE, control_id="B")]
        + ["BTS|2", "FTS|1"]
    )
    messages = hl7v2.read_messages(batch)
    assert [m.control_id for m in messages] == ["A", "B"]
    assert all(m.ok for m in messages)
    assert b"BTS" not in messages[1].raw


def test_escapes_repetitions_components_and_structured_numbers():
    message = hl7v2.read_messages(
        oru(
            "ST|X1^Na\\T\\K ratio \\F\\ urine^L||high\\S\\low||||||F",
            "NM|X2^Flags^L||7|mg||H~A|||F",
            "SN|X3^Titre^L||<^10|||||F",
        )
    )[0]
    rows = hl7v2.flatten(message)
    assert rows[0]["observation_text"] == "Na&K ratio | urine"
    assert rows[0]["value"] == "high^low"
    assert rows[1]["abnormal_flag"] == "H~A"
    assert rows[2]["value"] == "<10"


def test_other_separators_and_a_declared_latin1_charset():
    text = oru("ST|X1^Caf\xe9^L||ok||||||F").replace("|P|2.5.1", "|P|2.5.1||||||8859/1")
    message = hl7v2.read_messages(text.encode("latin-1"))[0]
    assert message.ok, message.error
    assert hl7v2.flatten(message)[0]["observation_text"] == "Caf\xe9"
    hashed = oru(GLUCOSE).replace("|", "#")
    other = hl7v2.read_messages(hashed)[0]
    assert other.ok and hl7v2.flatten(other)[0]["value"] == "5.4"


def test_broken_messages_get_a_reason_naming_file_and_line(tmp_path):
    bad = tmp_path / "feed.hl7"
    bad.write_bytes(
        oru(GLUCOSE, control_id="GOOD").encode()
        + b"\rMSH|^~\\&|LIS|NORTH|||2024||ORU^R01|UTF|P|2.5\rOBX|1|ST|A^B^L||\xff\xfe\r"
        + b"MSH|^~\\&|LIS|NORTH|||2024|||NOTYPE|P|2.5\r"
    )
    messages = hl7v2.read_file(bad)
    assert [m.ok for m in messages] == [True, False, False]
    assert messages[1].error.startswith(f"{bad}:{messages[1].line}: not valid utf-8")
    assert "MSH-18" in messages[1].error
    assert messages[1].control_id == "UTF"  # identified even though it failed, so it can be acknowledged
    assert "MSH-9" in messages[2].error
    assert hl7v2.flatten(messages[1]) == []


def test_text_that_is_not_hl7_is_a_message_with_a_reason():
    for junk in (b"hello world", b"\x00\x01\x02", b"MSH", b"MSHx^~\\&|", b"MSH|^|", b"<xml/>"):
        messages = hl7v2.read_messages(junk)
        assert len(messages) == 1 and not messages[0].ok and messages[0].error


def test_fuzzed_messages_never_raise():
    rng = random.Random(7)
    seeds = [path.read_bytes() for path in sorted(HL7_SAMPLES.glob("*.hl7"))]
    outcomes = {True: 0, False: 0}
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data) + 1)
            action = rng.randrange(4)
            if action == 0:
                del data[position:]
            elif action == 1:
                data[position : position + 1] = bytes([rng.randrange(256)])
            elif action == 2:
                data[position:position] = rng.choice(
                    [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\\X", b"\\.sp"]
                ) * rng.randint(1, 50)
            else:
                data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        for message in hl7v2.read_messages(bytes(data)):
            outcomes[message.ok] += 1
            assert message.ok or message.error
            hl7v2.flatten(message)
            conformance.check(message)
    assert outcomes[True] and outcomes[False]  # the mutations produced both kinds


def test_deep_repetition_is_read_not_crashed():
    message = hl7v2.read_messages(oru("ST|X^Y^L||" + "a~" * 50_000 + "||||||F"))[0]
    assert message.ok
    assert hl7v2.flatten(message)[0]["value"].count("a") == 50_000


def test_a_message_with_too_many_delimiters_is_refused_with_a_reason():
    message = hl7v2.read_messages(oru("ST|X^Y^L||" + "a~" * (hl7v2.MAX_DELIMITERS + 1) + "||||||F"))[0]
    assert not message.ok and "split the message" in message.error
    assert message.control_id == "MSG1"
