"""Reuse: an approval made in another project, offered first for the same local code or text.

A match is either the same source code from the same source system (or source URI), or a
near-identical normalised text whose context (unit, specimen, ...) does not contradict. Only
projects mapping to the same target terminology count. Taking an offer is its own audited
decision (`decision.reuse`), carrying the provenance in its comment; four-eyes projects still
need a second reviewer.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from sqlmodel import Session, col, select

from models.text import normalize
from service import audit, crud
from service.store.errors import Conflict, NotFound
from service.store.living import ReuseOffer, ReuseTake
from service.store.tables import Project, Release, ReleaseEntry, SourceItem, Status, utcnow

TEXT_SIMILARITY = 0.92  # "near-identical": a typo or word order apart, not a different test
CONTEXT_KEYS = ("unit", "units", "specimen", "system", "property", "scale", "method", "domain")


def offers(session: Session, project: Project, item: SourceItem) -> list[ReuseOffer]:
    """Approvals elsewhere that fit `item`: same code first, then by text similarity."""
    query = (
        select(SourceItem, Project)
        .join(Project, Project.id == SourceItem.project_id)
        .where(Project.id != project.id, Project.target_terminology == project.target_terminology)
        .where(SourceItem.status == Status.approved, col(SourceItem.target_code).is_not(None))
    )
    found: list[ReuseOffer] = []
    for other, other_project in session.exec(query):
        match = _match(project, item, other_project, other)
        if match is not None:
            found.append(_offer(session, other, other_project, *match))
    found.sort(key=lambda o: (o.match != "code", -o.similarity, o.decided_at or ""), reverse=False)
    return found


def _match(project: Project, item: SourceItem, other_project: Project, other: SourceItem) -> tuple[str, float] | None:
    same_system = project.source_uri == other_project.source_uri or project.source_system == other_project.source_system
    if same_system and item.code == other.code:
        return "code", 1.0
    if not _context_agrees(item.context, other.context):
        return None
    a, b = normalize(item.text), normalize(other.text)
    similarity = 1.0 if a == b else SequenceMatcher(None, a, b).ratio()
    return ("text", round(similarity, 4)) if similarity >= TEXT_SIMILARITY else None


def _context_agrees(mine: dict[str, str], theirs: dict[str, str]) -> bool:
    """Context both sides state must agree (Glucose in mg/dL is not glucose in mmol/L)."""
    return all(
        mine[k].strip().casefold() == theirs[k].strip().casefold() for k in CONTEXT_KEYS if k in mine and k in theirs
    )


def _offer(session: Session, other: SourceItem, project: Project, match: str, similarity: float) -> ReuseOffer:
    return ReuseOffer(
        match=match,
        similarity=similarity,
        project_id=project.id,
        project_name=project.name,
        source_code=other.code,
        source_text=other.text,
        target_code=other.target_code,
        target_display=other.target_display,
        relationship=other.relationship,
        approved_by=other.decided_by,
        confirmed_by=other.confirmed_by,
        decided_at=other.decided_at,
        terminology_version=other.terminology_version,
        release=_release_of(session, project, other),
    )


def _release_of(session: Session, project: Project, item: SourceItem) -> int | None:
    """The latest release of `project` that carries this very mapping."""
    query = (
        select(Release.number)
        .join(ReleaseEntry, ReleaseEntry.release_id == Release.id)
        .where(Release.project_id == project.id, ReleaseEntry.source_code == item.code)
        .where(ReleaseEntry.target_code == item.target_code, ReleaseEntry.status == Status.approved)
        .order_by(col(Release.number).desc())
    )
    return session.exec(query.limit(1)).first()


def take(
    session: Session, project: Project, code: str, choice: ReuseTake, actor: str, version: int | None
) -> SourceItem:
    """Adopt an offered approval for `code`, against item `version` (a newer item -> 409)."""
    audit.lock_chain(session)
    item = crud._item_at(session, project, code, version)
    offer = next(
        (
            o
            for o in offers(session, project, item)
            if o.project_id == choice.from_project and o.source_code == choice.from_code
        ),
        None,
    )
    if offer is None:
        raise NotFound(
            f"no approval of {choice.from_code!r} in project {choice.from_project} fits {code!r}; "
            f"GET .../items/{code}/reuse lists the offers"
        )
    if item.status == Status.approved and item.target_code == offer.target_code:
        raise Conflict(f"{code!r} is already approved to {offer.target_code}")
    provenance = (
        f"reused from project {offer.project_name!r} code {offer.source_code!r}"
        f"{f' (release {offer.release})' if offer.release else ''}, approved by {offer.approved_by or 'unknown'}"
        f"{f', confirmed by {offer.confirmed_by}' if offer.confirmed_by else ''}"
        f"; match: {offer.match} {offer.similarity:.2f}"
    )
    changes = {
        "target_code": offer.target_code,
        "target_display": offer.target_display,
        "relationship": offer.relationship,
        "terminology_version": offer.terminology_version,
        "decided_by": actor,
        "decided_at": utcnow(),
        "confirmed_by": None,
        "comment": provenance + (f"; {choice.comment}" if choice.comment else ""),
    }
    if project.four_eyes:
        changes |= {"status": Status.pending, "proposed_status": Status.approved}
    else:
        changes |= {"status": Status.approved, "proposed_status": None}
    audit.record(session, actor, "decision.reuse", item, changes)
    return item
