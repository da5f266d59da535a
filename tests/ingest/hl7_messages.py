"""Sample HL7 v2 messages and a builder for hand-written ones (a plain module: imported by name from the tests)."""

from __future__ import annotations

from pathlib import Path

HL7_SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "hl7v2"


def oru(
    *obx: str,
    control_id: str = "MSG1",
    site: str = "NORTH LAB",
    version: str = "2.5.1",
    ack_types: str = "",
    obr_code: str = "PANEL1^Basic panel^L",
) -> str:
    """An ORU^R01 with the given OBX bodies (everything after 'OBX|n|'), CR-separated."""
    segments = [
        f"MSH|^~\\&|LIS|{site}|CROSSWALK|HOSP|20240105103000||ORU^R01^ORU_R01|{control_id}|P|{version}{ack_types}",
        "PID|1||P123^^^HOSP^MR||DOE^JANE||19700101|F",
        "PV1|1|O|CLINIC^^^NORTH",
        f"OBR|1|PL1|FL1|{obr_code}|||20240105090000",
    ]
    segments += [f"OBX|{i}|{body}" for i, body in enumerate(obx, start=1)]
    return "\r".join(segments)


def sample_files() -> list[Path]:
    return sorted(HL7_SAMPLES.glob("*.hl7"))
