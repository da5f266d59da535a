"""The review part of `crosswalk demo`: a project on the embedded store, reviewed and released."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service import crud, crud_releases, decisions
from service.crud_imports import SuggesterLike, generate_suggestions, import_items, parse_source_file
from service.settings import Settings
from service.store.db import engine_for, session_scope, upgrade
from service.store.tables import DecisionCreate, ProjectCreate, Status, SuggestRequest

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
PROJECT = "Demo: legacy ADT diagnoses"
DEMO_USER = "demo"
AUTO_APPROVED = 5  # items whose top suggestion the demo user approves


def demo_source() -> Path:
    """The same real legacy ICD-9-CM list the mapping demo ranks (CMS short titles)."""
    return SAMPLES / "legacy_icd9_diagnoses.csv"


def run_review_demo(settings: Settings, suggester: SuggesterLike) -> dict[str, Any]:
    """Create (or reuse) the demo project, import, suggest, approve a few top suggestions, release."""
    engine = engine_for(settings.database_url)
    upgrade(engine)
    source = demo_source()
    with session_scope(engine) as session:
        project = _project(session, suggester.terminology.name, source)
        imported = import_items(session, project, parse_source_file(source.read_bytes(), "csv", source.name), DEMO_USER)
        suggested = generate_suggestions(session, project, suggester, SuggestRequest(top_k=5), DEMO_USER)
        approved = _approve_top(session, project, suggester)
        release = crud_releases.create_release(
            session, project, DEMO_USER, "demo: top suggestions approved", unchanged="latest"
        )  # a warm re-run changes nothing: it shows the latest release instead of adding one
    return {
        "project_id": project.id,
        "project": project.name,
        "source": str(source),
        "items": imported.total,
        "suggested": suggested.items,
        "model_version": suggested.model_version,
        "approved": approved,
        "release": release.number,
        "release_entries": release.entry_count,
    }


def _project(session, terminology: str, source: Path):
    existing = [p for p in crud.list_projects(session) if p.name == PROJECT]
    if existing:
        return existing[0]
    billable = {"billable": True} if terminology == "icd10cm" else {}  # claims need billable codes
    data = ProjectCreate(name=PROJECT, source_system=f"demo: {source.stem}", target_terminology=terminology, target_filter=billable)
    return crud.create_project(session, data, DEMO_USER)


def _approve_top(session, project, suggester: SuggesterLike) -> list[str]:
    """The demo user approves the top suggestion of the most frequent codes (if not approved yet)."""
    _, items = crud.list_items(session, project, limit=AUTO_APPROVED)
    approved = []
    for item in items:
        if item.status != Status.approved and crud.current_suggestions(session, item):
            decision = DecisionCreate(action="approve", comment="demo: top suggestion")
            decisions.decide(session, project, item.code, decision, DEMO_USER, item.version, suggester.terminology)
            approved.append(item.code)
    return approved
