"""Reuse: an approval made in another project, offered first for the same local code or text.

A match is either the same source code from the same source system (or source URI), or a
near-identical normalised text whose context (unit, specimen, ...) does not contradict. Only
projects mapping to the same target terminology count. Taking an offer is its own audited
decision (`decision.reuse`), carrying the provenance in its comment; four-eyes projects still
need a second reviewer.
"""

from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher

from sqlmodel import Session, col, select

from models.terminology import Concept
from models.text import normalize
from service import audit, crud, decisions
from service.living.filters import select_items
from service.store.errors import Conflict, NotFound
from service.store.living import BulkResult, BulkReuse, ItemOffers, ReuseOffer, ReuseTake
from service.store.tables import Project, Release, ReleaseEntry, SourceItem, Status

TEXT_SIMILARITY = 0.92  # "near-identical": a typo or word order apart, not a different test
CONTEXT_KEYS = ("unit", "units", "specimen", "system", "property", "scale", "method", "domain")


Candidate = tuple[SourceItem, Project, str]  # an approval elsewhere, its project, its normalised text
OPEN = (Status.new, Status.suggested, Status.flagged)  # items a reuse offer can still help


def approved_elsewhere(session: Session, project: Project) -> list[Candidate]:
    """Approvals in the other projects that map to the same target terminology."""
    query = (
        select(SourceItem, Project)
        .join(Project, Project.id == SourceItem.project_id)
        .where(Project.id != project.id, Project.target_terminology == project.target_terminology)
        .where(SourceItem.status == Status.approved, col(SourceItem.target_code).is_not(None))
        .order_by(SourceItem.id)
    )
    return [(other, other_project, normalize(other.text)) for other, other_project in session.exec(query)]


def offers(
    session: Session, project: Project, item: SourceItem, candidates: list[Candidate] | None = None
) -> list[ReuseOffer]:
    """Approvals elsewhere that fit `item`: same code first, then by text similarity."""
    candidates = approved_elsewhere(session, project) if candidates is None else candidates
    mine = normalize(item.text)
    found: list[ReuseOffer] = []
    for other, other_project, theirs in candidates:
        match = _match(project, item, mine, other_project, other, theirs)
        if match is not None:
            found.append(_offer(session, other, other_project, *match))
    found.sort(key=lambda o: (o.match != "code", -o.similarity, o.decided_at or ""))
    return found


def _match(
    project: Project, item: SourceItem, mine: str, other_project: Project, other: SourceItem, theirs: str
) -> tuple[str, float] | None:
    same_system = project.source_uri == other_project.source_uri or project.source_system == other_project.source_system
    if same_system and item.code == other.code:
        return "code", 1.0
    if not _context_agrees(item.context, other.context):
        return None
    if mine == theirs:
        return "text", 1.0
    matcher = SequenceMatcher(None, mine, theirs)
    # the cheap upper bounds first: most pairs are far apart, and ratio() is quadratic
    if matcher.real_quick_ratio() < TEXT_SIMILARITY or matcher.quick_ratio() < TEXT_SIMILARITY:
        return None
    similarity = matcher.ratio()
    return ("text", round(similarity, 4)) if similarity >= TEXT_SIMILARITY else None


def project_offers(session: Session, project: Project) -> list[ItemOffers]:
    """Every undecided item of the project that an approval elsewhere fits, with its offers."""
    candidates = approved_elsewhere(session, project)
    if not candidates:
        return []
    query = select(SourceItem).where(SourceItem.project_id == project.id, col(SourceItem.status).in_(OPEN))
    out = []
    for item in session.exec(query.order_by(SourceItem.code)):
        found = offers(session, project, item, candidates)
        if found:
            out.append(ItemOffers(source_code=item.code, source_text=item.text, status=item.status, offers=found))
    return out


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
    item = decisions.item_at(session, project, code, version)
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
    decisions.refuse_if_dual(session, item)
    _adopt(session, project, item, offer, actor, choice.comment)
    return item


def take_all(session: Session, project: Project, request: BulkReuse, actor: str) -> BulkResult:
    """Take the best offer of every filtered undecided item, where the offers agree on one target."""
    audit.lock_chain(session)
    wanted = request.filter
    if wanted.statuses is None:
        wanted = wanted.model_copy(update={"statuses": list(OPEN)})
    items = select_items(session, project, wanted)
    candidates = approved_elsewhere(session, project)
    skipped: Counter[str] = Counter()
    for item in items:
        found = [o for o in offers(session, project, item, candidates) if o.similarity >= request.min_similarity]
        reason = _why_not(session, item, found)
        if reason:
            skipped[reason] += 1
        else:
            _adopt(session, project, item, found[0], actor, request.comment)
    return BulkResult(matched=len(items), changed=len(items) - sum(skipped.values()), skipped=dict(skipped))


def _why_not(session: Session, item: SourceItem, found: list[ReuseOffer]) -> str | None:
    if not found:
        return "no offer"
    if len({(o.target_code, o.relationship) for o in found}) > 1:
        return "offers disagree"  # two sites mapped it differently: a person decides
    if crud.open_dual(session, item) is not None:
        return "under dual mapping"
    return None


def _adopt(
    session: Session, project: Project, item: SourceItem, offer: ReuseOffer, actor: str, note: str | None
) -> None:
    provenance = (
        f"reused from project {offer.project_name!r} code {offer.source_code!r}"
        f"{f' (release {offer.release})' if offer.release else ''}, approved by {offer.approved_by or 'unknown'}"
        f"{f', confirmed by {offer.confirmed_by}' if offer.confirmed_by else ''}"
        f"; match: {offer.match} {offer.similarity:.2f}"
    )
    state = decisions.outcome(
        project,
        item,
        "approve",
        actor=actor,
        target=Concept(offer.target_code, offer.target_display or ""),
        relationship=offer.relationship,
        comment=provenance + (f"; {note}" if note else ""),
        terminology_version=offer.terminology_version,
    )
    decisions.apply(session, item, state, actor, "decision.reuse")
