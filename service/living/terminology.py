"""Terminology release updates: record what a new release changed and re-open the mappings it hit.

Every approved (or four-eyes pending) mapping whose target was retired, replaced or renamed goes
back to review (status `flagged`) with the reason in its comment and a `reopening` row; when the
release names successors they become the item's current suggestions (one audited batch per
project, model version `release:<name>@<version>`), so approving the top one takes the replacement.
The item keeps the terminology version it was approved against until it is decided again.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, col, select

from models.release_diff import ChangeKind, ConceptChange, ReleaseDiff, diff_releases, usable
from models.terminology import Terminology
from service import audit, decisions
from service.store.errors import NotFound
from service.store.living import (
    ChangePublic,
    ReopenCause,
    Reopening,
    ReopeningPublic,
    TerminologyChange,
    TerminologyRelease,
    TerminologyReleaseDetail,
    TerminologyReleasePublic,
)
from service.store.tables import Project, SourceItem, Status, Suggestion, SuggestionBatch

REOPEN_KINDS = (ChangeKind.retired, ChangeKind.replaced, ChangeKind.renamed)
HELD = (Status.approved, Status.pending)  # decisions that point at a target a release can pull away


def register_release(session: Session, new: Terminology, old: Terminology | None, actor: str) -> TerminologyRelease:
    """Record `new` (diffed against `old`, the release in use, when there is one) and re-open mappings."""
    audit.lock_chain(session)
    diff = diff_releases(old, new) if old is not None else None
    hit = _affected(session, new.name, diff) if diff is not None else []
    previous = latest_release(session, new.name)
    release = TerminologyRelease(
        name=new.name,
        version=new.version,
        previous_version=old.version if old is not None else (previous.version if previous else None),
        format=new.format,
        usable_codes=sum(1 for c in new if usable(c)),
        counts=diff.counts() if diff is not None else {},
        reopened=len(hit),
        loaded_by=actor,
    )
    audit.record(session, actor, "terminology.release", release, children=_change_rows(diff))
    by_project: dict[int, list[tuple[SourceItem, ConceptChange]]] = defaultdict(list)
    for item, change in hit:
        by_project[item.project_id].append((item, change))
    for project_id, pairs in by_project.items():
        _reopen_project(session, session.get(Project, project_id), release, pairs, new, actor)
    return release


def _change_rows(diff: ReleaseDiff | None) -> list[TerminologyChange]:
    if diff is None:
        return []
    return [
        TerminologyChange(
            code=c.code,
            kind=c.kind.value,
            old_display=c.old_display,
            new_display=c.new_display,
            replacements=list(c.replacements),
            detail=c.detail,
        )
        for c in diff.changes
    ]


def _affected(session: Session, name: str, diff: ReleaseDiff) -> list[tuple[SourceItem, ConceptChange]]:
    """Held mappings of projects on this terminology whose target the release changed (archived projects
    are read-only: their released mappings stay as released)."""
    changes = {c.code: c for c in diff.changes if c.kind in REOPEN_KINDS}
    projects = select(Project.id).where(Project.target_terminology == name, col(Project.archived).is_(False))
    query = (
        select(SourceItem)
        .where(col(SourceItem.project_id).in_(projects), col(SourceItem.status).in_(HELD))
        .where(col(SourceItem.target_code).in_(list(changes)))
        .order_by(SourceItem.project_id, SourceItem.code)
    )
    return [(item, changes[item.target_code]) for item in session.exec(query)]


def _reopen_project(
    session: Session,
    project: Project,
    release: TerminologyRelease,
    pairs: list[tuple[SourceItem, ConceptChange]],
    new: Terminology,
    actor: str,
) -> None:
    model_version = f"release:{release.name}@{release.version}"
    batch_id = _replacement_batch(session, project, pairs, new, model_version, actor)
    for item, change in pairs:
        successors = _successors(change)
        reason = _reason(release, item, change, successors)
        also = {"suggestion_batch_id": batch_id} if successors and batch_id is not None else None
        decisions.reopen(
            session,
            item,
            reason,
            actor,
            cause=ReopenCause.terminology,
            change_kind=change.kind.value,
            model_version=model_version,
            also=also,
            terminology_release_id=release.id,
            replacements=successors,
        )


def _successors(change: ConceptChange) -> list[str]:
    # a renamed code is still valid: re-approving it (now with its new display) is the suggestion
    return [change.code] if change.kind == ChangeKind.renamed else list(change.replacements)


def _replacement_batch(
    session: Session,
    project: Project,
    pairs: list[tuple[SourceItem, ConceptChange]],
    new: Terminology,
    model_version: str,
    actor: str,
) -> int | None:
    """The successors as suggestions, score split evenly: the release names them, not which one fits."""
    rows: list[Suggestion] = []
    for item, change in pairs:
        successors = _successors(change)
        for rank, code in enumerate(successors, start=1):
            rows.append(
                Suggestion(
                    item_id=item.id,
                    rank=rank,
                    code=code,
                    display=new.get(code).display,
                    score=round(1 / len(successors), 4),
                    evidence={"replaces": item.target_code, "change": change.kind.value, "detail": change.detail},
                )
            )
    if not rows:
        return None
    batch = SuggestionBatch(
        project_id=project.id,
        model_version=model_version,
        top_k=max(r.rank for r in rows),
        item_count=len({r.item_id for r in rows}),
        created_by=actor,
    )
    audit.record(session, actor, "suggestions.generate", batch, children=rows, model_version=model_version)
    return batch.id


def _reason(release: TerminologyRelease, item: SourceItem, change: ConceptChange, successors: list[str]) -> str:
    approved = f" (approved against {item.terminology_version})" if item.terminology_version else ""
    where = f"{release.name} {release.version}"
    if change.kind == ChangeKind.renamed:
        text = f"{where}: target {change.code} renamed from {change.old_display!r} to {change.new_display!r}{approved}"
    else:
        text = f"{where}: target {change.code} {change.kind.value}: {change.detail}{approved}"
    if change.kind == ChangeKind.replaced:
        text += f"; suggested replacement{'s' if len(successors) > 1 else ''}: {', '.join(successors)}"
    return text + "; review it again"


# -- reading ----------------------------------------------------------------------------------------
def latest_release(session: Session, name: str) -> TerminologyRelease | None:
    query = (
        select(TerminologyRelease).where(TerminologyRelease.name == name).order_by(col(TerminologyRelease.id).desc())
    )
    return session.exec(query.limit(1)).first()


def list_releases(session: Session, name: str | None = None) -> list[TerminologyReleasePublic]:
    query = select(TerminologyRelease).order_by(TerminologyRelease.id)
    if name is not None:
        query = query.where(TerminologyRelease.name == name)
    return [TerminologyReleasePublic.model_validate(r) for r in session.exec(query)]


def release_detail(session: Session, release_id: int, kinds: list[str] | None = None) -> TerminologyReleaseDetail:
    release = session.get(TerminologyRelease, release_id)
    if release is None:
        raise NotFound(f"no terminology release {release_id}; GET /terminology-releases lists them")
    query = select(TerminologyChange).where(TerminologyChange.release_id == release.id).order_by(TerminologyChange.id)
    if kinds:
        query = query.where(col(TerminologyChange.kind).in_(kinds))
    changes = [ChangePublic.model_validate(c) for c in session.exec(query)]
    reopenings = reopenings_of(session, release_id=release.id)
    return TerminologyReleaseDetail.model_validate(release, update={"changes": changes, "reopenings": reopenings})


def reopenings_of(
    session: Session, project: Project | None = None, release_id: int | None = None
) -> list[ReopeningPublic]:
    query = (
        select(Reopening, SourceItem.code).join(SourceItem, SourceItem.id == Reopening.item_id).order_by(Reopening.id)
    )
    if project is not None:
        query = query.where(Reopening.project_id == project.id)
    if release_id is not None:
        query = query.where(Reopening.terminology_release_id == release_id)
    return [ReopeningPublic.model_validate(r, update={"source_code": code}) for r, code in session.exec(query)]
