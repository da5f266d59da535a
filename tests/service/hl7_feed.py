"""Hand-written lab messages and a feed built from them, for the HL7 service tests (a plain module)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from ingest import hl7v2
from service import crud
from service.monitoring import feeds
from service.monitoring.messages import rows_upload
from service.store.db import session_scope
from service.store.feeds import Feed
from service.store.tables import Project, ProjectCreate
from tests.ingest.hl7_messages import HL7_SAMPLES, oru

__all__ = ["HL7_SAMPLES", "lab_messages", "make_feed", "oru"]


def lab_messages(
    n: int, *, start: int = 0, site: str = "NORTH LAB", unit: str = "mg/dL", scale: float = 1.0, flag: str = "N"
) -> list[str]:
    """ORU^R01s with two locally coded results each (glucose, sodium), control ids L{start}..."""
    return [
        oru(
            f"NM|GLU^Glucose fasting^L||{(80 + (i * 7) % 40) * scale:g}|{unit}|70-110|{flag}|||F",
            f"NM|NA^Sodium^L||{135 + i % 8}|mmol/L|135-145|N|||F",
            control_id=f"L{i}",
            site=site,
        )
        for i in range(start, start + n)
    ]


def make_feed(engine: Engine, home: Path, name: str = "labs") -> tuple[Feed, Project]:
    """A project and a feed whose reference is 60 clean lab messages, linked to the project."""
    rows = hl7v2.flatten_all(hl7v2.read_messages("\r".join(lab_messages(60, start=10_000))))
    with session_scope(engine) as session:
        project = crud.create_project(
            session, ProjectCreate(name=f"{name}-codes", source_system="LIS", target_terminology="icd10cm"), "tester"
        )
        data = feeds.valid_feed(name=name, mapping_project_id=project.id, segment_columns=["site"])
        feed = feeds.create_feed(session, home, data, rows_upload(rows, "reference.csv"), "tester")
    return feed, project
