"""Releases: immutable, numbered snapshots of a project's approved (and unmappable) decisions."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from service import audit
from service.exports import ReleaseBundle
from service.store.errors import Conflict, Invalid, NotFound
from service.store.tables import (
    RELEASED,
    EntryChange,
    EntryPublic,
    Project,
    Release,
    ReleaseDetail,
    ReleaseDiff,
    ReleaseEntry,
    SourceItem,
    SuggestionBatch,
)

COMPARED = ("status", "target_code", "relationship", "comment")  # what makes an entry "changed"


def create_release(
    session: Session, project: Project, actor: str, note: str | None = None, unchanged: str = "refuse"
) -> Release:
    """A numbered release of the project's decided mappings. One identical to the latest is refused
    (`unchanged="refuse"`, a 409) or that latest release is returned (`unchanged="latest"`)."""
    audit.lock_chain(session)  # numbers and contents are read under the writers' lock
    entries = _snapshot_entries(session, project)
    if not entries:
        raise Invalid(f"project {project.name!r} has no approved mappings to release; approve some first")
    last = session.exec(select(func.max(Release.number)).where(Release.project_id == project.id)).one()
    if last and _same_entries(session, project, last, entries):
        if unchanged == "latest":
            return get_release(session, project, last)
        raise Conflict(f"nothing changed since release {last} of project {project.name!r}; decide something first")
    release = Release(
        project_id=project.id, number=(last or 0) + 1, note=note, entry_count=len(entries), created_by=actor
    )
    audit.record(session, actor, "release.create", release, children=entries)
    return release


def _same_entries(session: Session, project: Project, number: int, entries: list[ReleaseEntry]) -> bool:
    previous = get_release(session, project, number)
    kept = session.exec(select(ReleaseEntry).where(ReleaseEntry.release_id == previous.id).order_by(ReleaseEntry.id))

    def key(entry: ReleaseEntry) -> str:
        return audit.canonical(entry.model_dump(mode="json", exclude={"id", "release_id"}))

    return sorted(map(key, kept)) == sorted(map(key, entries))


def _snapshot_entries(session: Session, project: Project) -> list[ReleaseEntry]:
    query = (
        select(SourceItem, SuggestionBatch.model_version)
        .outerjoin(SuggestionBatch, SuggestionBatch.id == SourceItem.suggestion_batch_id)
        .where(SourceItem.project_id == project.id, col(SourceItem.status).in_(RELEASED))
        .order_by(SourceItem.code)
    )
    return [
        ReleaseEntry(
            **item.model_dump(include=set(EntryPublic.model_fields) - {"source_code", "source_text", "model_version"}),
            source_code=item.code,
            source_text=item.text,
            model_version=model_version,
        )
        for item, model_version in session.exec(query)
    ]


def get_release(session: Session, project: Project, number: int) -> Release:
    release = session.exec(select(Release).where(Release.project_id == project.id, Release.number == number)).first()
    if release is None:
        raise NotFound(f"project {project.name!r} has no release {number}")
    return release


def latest_release(session: Session, project: Project) -> Release | None:
    query = select(Release).where(Release.project_id == project.id).order_by(col(Release.number).desc())
    return session.exec(query.limit(1)).first()


def list_releases(session: Session, project: Project) -> list[Release]:
    return list(session.exec(select(Release).where(Release.project_id == project.id).order_by(Release.number)))


def entries_of(session: Session, release: Release) -> list[ReleaseEntry]:
    query = select(ReleaseEntry).where(ReleaseEntry.release_id == release.id).order_by(ReleaseEntry.source_code)
    return list(session.exec(query))


def release_detail(session: Session, release: Release) -> ReleaseDetail:
    entries = [EntryPublic.model_validate(e) for e in entries_of(session, release)]
    return ReleaseDetail.model_validate(release, update={"entries": entries})


def bundle(session: Session, project: Project, number: int) -> ReleaseBundle:
    release = get_release(session, project, number)
    return ReleaseBundle(project=project, release=release, entries=entries_of(session, release))


def diff(session: Session, project: Project, from_number: int, to_number: int) -> ReleaseDiff:
    """Entries added, removed and changed (status, target, relationship or comment) between releases."""
    old = {
        e.source_code: EntryPublic.model_validate(e)
        for e in entries_of(session, get_release(session, project, from_number))
    }
    new = {
        e.source_code: EntryPublic.model_validate(e)
        for e in entries_of(session, get_release(session, project, to_number))
    }
    changed = [
        EntryChange(before=old[code], after=new[code])
        for code in sorted(old.keys() & new.keys())
        if any(getattr(old[code], f) != getattr(new[code], f) for f in COMPARED)
    ]
    return ReleaseDiff(
        from_number=from_number,
        to_number=to_number,
        added=[new[c] for c in sorted(new.keys() - old.keys())],
        removed=[old[c] for c in sorted(old.keys() - new.keys())],
        changed=changed,
    )
