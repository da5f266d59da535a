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
# A careful reviewer's bulk approve: only top suggestions whose calibrated P(correct) reaches this,
# and only where they agree with the CMS GEM for that ICD-9-CM code (the demo's answer key).
APPROVE_AT = 0.8


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
        approved, queued = _approve_confident(session, project, suggester)
        release = None
        if crud.list_items(session, project, status=Status.approved, limit=1)[0]:  # nothing approved: no release
            note = "demo: confident suggestions that agree with the GEM"
            # a warm re-run changes nothing: it shows the latest release instead of adding one
            release = crud_releases.create_release(session, project, DEMO_USER, note, unchanged="latest")
    return {
        "project_id": project.id,
        "project": project.name,
        "source": str(source),
        "items": imported.total,
        "suggested": suggested.items,
        "model_version": suggested.model_version,
        "approved": approved,
        "queued": queued,
        "release": release.number if release else None,
        "release_entries": release.entry_count if release else 0,
    }


def _project(session, terminology: str, source: Path):
    existing = [p for p in crud.list_projects(session) if p.name == PROJECT]
    if existing:
        return existing[0]
    billable = {"billable": True} if terminology == "icd10cm" else {}  # claims need billable codes
    data = ProjectCreate(
        name=PROJECT, source_system=f"demo: {source.stem}", target_terminology=terminology, target_filter=billable
    )
    return crud.create_project(session, data, DEMO_USER)


def gem_answers() -> dict[str, set[str]]:
    """ICD-9-CM code (dotted as the sample writes it) -> its GEM ICD-10-CM targets (dotted)."""
    from training.datasets import gem_icd9_to_icd10

    def dot(code: str, at: int) -> str:
        return code if len(code) <= at else f"{code[:at]}.{code[at:]}"

    out = {}
    for query in gem_icd9_to_icd10("all"):
        icd9 = query.source_code
        key = dot(icd9, 4 if icd9.startswith("E") else 3)
        out[key] = {dot(t, 3) for t in query.targets}
    return out


def _approve_confident(session, project, suggester: SuggesterLike) -> tuple[list[dict], list[dict]]:
    """Approve the top suggestion where it is confident (P >= APPROVE_AT) and the GEM agrees; queue the rest.

    Returns (approved, queued), each entry with the code, its top suggestion, score and the GEM's answer.
    """
    gem = gem_answers()
    _, items = crud.list_items(session, project, limit=1000)
    approved, queued = [], []
    for item in items:
        suggestions = crud.current_suggestions(session, item)
        if item.status == Status.approved or not suggestions:
            continue
        top = suggestions[0]
        answers = gem.get(item.code, set())
        entry = {"code": item.code, "text": item.text, "top": top.code, "score": top.score, "gem": sorted(answers)}
        if top.score >= APPROVE_AT and top.code in answers:
            comment = f"demo: P(correct) {top.score:.2f}, agrees with the GEM"
            decision = DecisionCreate(action="approve", comment=comment)
            decisions.decide(session, project, item.code, decision, DEMO_USER, item.version, suggester.terminology)
            approved.append(entry)
        else:
            entry["why"] = "below the approval threshold" if top.score < APPROVE_AT else "the GEM says otherwise"
            queued.append(entry)
    return approved, queued
