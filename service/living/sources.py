"""Source-list updates: re-import a project's source codes and say what changed.

New codes are imported; codes whose text changed get the new text, are re-suggested, and, when
they had a decision, go back to review (`flagged`, with a `reopening` row saying what changed);
frequency or context changes update the item and keep its decision; codes missing from the file
are reported and kept, decisions included (historical data still carries them). Decisions on
unchanged codes are not touched at all: no new event, same version, same approver and history.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlmodel import Session, select

from service import audit, decisions
from service.crud_imports import ImportRow, SuggesterLike, generate_suggestions
from service.store.living import ReopenCause, SourceUpdate, SourceUpdatePublic
from service.store.tables import Project, SourceItem, Status, SuggestRequest

DECIDED = (Status.approved, Status.pending, Status.unmappable, Status.rejected, Status.flagged)
_SPACE = re.compile(r"\s+")


def update_source(
    session: Session,
    project: Project,
    rows: Sequence[ImportRow],
    actor: str,
    suggester: SuggesterLike | None = None,
    top_k: int = 5,
) -> SourceUpdatePublic:
    """Apply a re-imported source list; re-suggest changed texts with `suggester` when given."""
    audit.lock_chain(session)
    existing = {i.code: i for i in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))}
    codes = _classify(existing, rows)
    text_changed = set(codes["text_changed"])
    to_reopen = [existing[c] for c in codes["text_changed"] if existing[c].status in DECIDED]
    carried = sum(
        1 for r in rows if r.code in existing and r.code not in text_changed and existing[r.code].status in DECIDED
    )
    update = SourceUpdate(
        project_id=project.id, codes=codes, carried_forward=carried, reopened=len(to_reopen), created_by=actor
    )
    audit.record(session, actor, "source.update", update)
    for row in rows:
        _apply(session, project, existing.get(row.code), row, update, actor)
    resuggested, model_version = 0, None
    if suggester is not None and (codes["text_changed"] or codes["new"]):
        request = SuggestRequest(top_k=top_k, codes=codes["text_changed"] + codes["new"])
        result = generate_suggestions(session, project, suggester, request, actor)
        resuggested, model_version = result.items, result.model_version
    unchanged = (
        len(rows)
        - len(codes["new"])
        - len(text_changed | set(codes["frequency_changed"]) | set(codes["context_changed"]))
    )
    return SourceUpdatePublic(
        id=update.id,
        **codes,
        unchanged=unchanged,
        carried_forward=carried,
        reopened=len(to_reopen),
        resuggested=resuggested,
        model_version=model_version,
    )


def _classify(existing: dict[str, SourceItem], rows: Sequence[ImportRow]) -> dict[str, list[str]]:
    codes: dict[str, list[str]] = {
        k: [] for k in ("new", "removed", "text_changed", "frequency_changed", "context_changed")
    }
    for row in rows:
        item = existing.get(row.code)
        if item is None:
            codes["new"].append(row.code)
            continue
        if _normal(item.text) != _normal(row.text):
            codes["text_changed"].append(row.code)
        if item.frequency != row.frequency:
            codes["frequency_changed"].append(row.code)
        if item.context != row.context:
            codes["context_changed"].append(row.code)
    in_file = {r.code for r in rows}
    codes["removed"] = sorted(c for c in existing if c not in in_file)
    return codes


def _apply(
    session: Session, project: Project, item: SourceItem | None, row: ImportRow, update: SourceUpdate, actor: str
) -> None:
    fields = {"text": row.text, "frequency": row.frequency, "context": row.context}
    if item is None:
        audit.record(session, actor, "item.import", SourceItem(project_id=project.id, code=row.code, **fields))
        return
    if row.code in update.codes["text_changed"] and item.status in DECIDED:
        reason = f"source text changed from {item.text!r} to {row.text!r}; re-check the mapping"
        decisions.reopen(
            session,
            item,
            reason,
            actor,
            cause=ReopenCause.source,
            change_kind="text",
            also=fields,
            source_update_id=update.id,
        )
        return
    audit.record(session, actor, "item.reimport", item, fields)  # writes nothing when nothing changed


def _normal(text: str) -> str:
    """Whitespace-only edits are not a new text to review."""
    return _SPACE.sub(" ", text).strip()


def source_updates(session: Session, project: Project) -> list[SourceUpdate]:
    return list(
        session.exec(select(SourceUpdate).where(SourceUpdate.project_id == project.id).order_by(SourceUpdate.id))
    )
