"""The only code that changes a source item's decision state.

Every way an item gets decided builds one `Decided` (the full decision state) and hands it to
`apply`: a reviewer's decision (API, UI, bulk approval), a four-eyes confirmation, an undo, a dual
mapping's agreement or reconciliation, reuse of another project's approval, and a re-opening by a
terminology or source update. `apply` writes the fields, records the model version behind the
item's suggestions and appends the audit event, so every decision's event has the same shape and
revert knows exactly which fields to put back (`DECISION_FIELDS`).

Callers own the transaction; `audit.lock_chain` is taken before an item is read for a decision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from sqlmodel import Session, col, select

from models.terminology import Concept
from service import audit, crud
from service.store.errors import Conflict, Forbidden, Invalid, PreconditionRequired, StaleVersion
from service.store.living import ReopenCause, Reopening
from service.store.review import ItemComment
from service.store.tables import AuditEvent, DecisionCreate, Project, SourceItem, Status, utcnow

# The status each reviewer action leads to (before four-eyes turns a final one into a proposal).
ACTION_STATUS = {
    "approve": Status.approved,
    "remap": Status.approved,
    "unmappable": Status.unmappable,
    "reject": Status.rejected,
    "flag": Status.flagged,
}
NEEDS_TARGET = ("approve", "remap")
FINAL = (Status.approved, Status.unmappable)  # a reviewer's settled answer: replacing another's is an override
UNDO_DEPTH = 50  # recent decisions looked at for one still undoable
UNDO_WINDOW = 2000  # ...among the project's latest events (a team's last hour or so of work)


class OverrideNeeded(Conflict):
    """The decision would replace another reviewer's final decision: the reviewer must say so."""


class TargetTerminology(Protocol):
    """What a decision needs of the project's target terminology: a concept by code, and its release."""

    version: str

    def get(self, code: str) -> Concept | None: ...


@dataclass(frozen=True)
class Decided:
    """A source item's full decision state: every field a decision owns, and nothing else."""

    status: str
    target_code: str | None = None
    target_display: str | None = None
    relationship: str | None = None
    comment: str | None = None
    proposed_status: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    confirmed_by: str | None = None
    terminology_version: str | None = None


DECISION_FIELDS = tuple(f.name for f in fields(Decided))


def current(item: SourceItem) -> Decided:
    return Decided(**{name: getattr(item, name) for name in DECISION_FIELDS})


def outcome(
    project: Project,
    item: SourceItem,
    action: str,
    *,
    actor: str,
    target: Concept | None = None,
    relationship: str | None = None,
    comment: str | None = None,
    terminology_version: str | None = None,
    confirmed_by: str | None = None,
    final: bool = False,
) -> Decided:
    """The state a reviewer's `action` leaves the item in.

    approve/remap set the target (relationship default: equivalent) and the release decided against;
    unmappable clears the target and keeps the release ("nothing fits" is a statement about one release);
    reject clears both; flag leaves the target as it was. On a four-eyes project an approval or
    unmappable becomes a proposal (pending) unless `final` (e.g. two dual mappers agreed).
    """
    status = ACTION_STATUS[action]
    if status == Status.approved:
        assert target is not None, "an approval names its concept"
        mapping = dict(
            target_code=target.code,
            target_display=target.display,
            relationship=relationship or "equivalent",
            terminology_version=terminology_version,
        )
    elif status == Status.unmappable:
        mapping = dict(relationship=relationship or "not-related-to", terminology_version=terminology_version)
    elif status == Status.rejected:
        mapping = {}
    else:  # flagged: the target stays as it was
        was = current(item)
        mapping = dict(
            target_code=was.target_code,
            target_display=was.target_display,
            relationship=was.relationship,
            terminology_version=was.terminology_version,
        )
    proposed = None
    if project.four_eyes and not final and status in (Status.approved, Status.unmappable):
        status, proposed = Status.pending, status
    return Decided(
        status=status,
        proposed_status=proposed,
        comment=comment,
        decided_by=actor,
        decided_at=utcnow(),
        confirmed_by=confirmed_by,
        **mapping,
    )


def apply(
    session: Session,
    item: SourceItem,
    state: Decided,
    actor: str,
    action: str,
    *,
    model_version: str | None = None,
    also: dict[str, Any] | None = None,
) -> SourceItem:
    """Write `state` to the item and append its audit event: the one write of decision state.

    `model_version` defaults to the model behind the item's current suggestions; `also` carries
    non-decision fields changed in the same event (a re-import's new text, a replacement batch).
    """
    changes = asdict(state) | (also or {})
    version = model_version if model_version is not None else crud.model_version_of(session, item)
    audit.record(session, actor, action, item, changes, model_version=version)
    return item


# -- a reviewer's decisions ---------------------------------------------------------------------------
def decide(
    session: Session,
    project: Project,
    code: str,
    decision: DecisionCreate,
    actor: str,
    version: int | None,
    target: TargetTerminology,
) -> SourceItem:
    """Apply a reviewer's decision made against item `version`; a newer item -> StaleVersion (409).

    `target` is the project's target terminology; it is read only when the decision names a concept
    (reject and flag never load it), and its release is kept on the item so that a later release can
    say what the mapping was approved against (service/living).
    """
    audit.lock_chain(session)  # read the item only once no other writer can change it
    item = item_at(session, project, code, version)
    refuse_if_dual(session, item)
    concept = resolve_target(session, project, item, decision.action, decision.target_code, target)
    release = target.version if decision.action in (*NEEDS_TARGET, "unmappable") else None
    state = outcome(
        project,
        item,
        decision.action,
        actor=actor,
        target=concept,
        relationship=decision.relationship,
        comment=decision.comment,
        terminology_version=release,
    )
    action = _kind_of(item, state, actor, decision.override)
    if action == "decision.counter":  # four-eyes disagreement: the new proposal waits for a third reviewer
        state = Decided(**(asdict(state) | {"status": Status.pending, "proposed_status": _settled(state)}))
    action = f"decision.{decision.action}" if action == "decision" else action
    add_comment(session, item, actor, decision.comment, action)
    return apply(session, item, state, actor, action)


def _settled(state: Decided) -> str:
    return state.proposed_status or state.status


def _kind_of(item: SourceItem, state: Decided, actor: str, override: bool) -> str:
    """What a decision is, given the item's state: a plain decision, a counter-proposal to another
    reviewer's four-eyes proposal, or an override of another reviewer's final decision, which must be
    asked for: a reviewer whose page was stale never replaces a colleague's answer by accident.

    Flagging is never an override (it keeps the target and asks for a look), and a second reviewer who
    proposes what was proposed re-proposes it (the first can then confirm: two people agreed)."""
    if item.decided_by is None or item.decided_by == actor or state.status == Status.flagged:
        return "decision"
    same = (_settled(state), state.target_code) == (item.proposed_status or item.status, item.target_code)
    if item.status == Status.pending:
        return "decision.counter" if state.status == Status.pending and not same else "decision"
    if item.status in FINAL and not same:
        if not override:
            target = f" to {item.target_code} {item.target_display or ''}".rstrip() if item.target_code else ""
            raise OverrideNeeded(
                f"{item.code!r} is {item.status}{target} by {item.decided_by}; replacing another reviewer's "
                "decision is an override: confirm it (override=true) or leave it"
            )
        return "decision.override"
    return "decision"


def add_comment(session: Session, item: SourceItem, author: str, text: str | None, action: str | None = None) -> None:
    """Add to the item's comment thread (which only grows: a later decision never wipes a comment)."""
    if text and text.strip():
        row = ItemComment(project_id=item.project_id, item_id=item.id, author=author, text=text.strip(), action=action)
        audit.record(session, author, "comment.add", row)


def confirm(
    session: Session, project: Project, code: str, actor: str, version: int | None, comment: str | None
) -> SourceItem:
    """Four-eyes: a second, different reviewer turns a pending decision into the final one."""
    audit.lock_chain(session)
    item = item_at(session, project, code, version)
    if item.status != Status.pending:
        raise Conflict(f"{code!r} is {item.status}, not pending; only a four-eyes proposal can be confirmed")
    if item.decided_by == actor:
        raise Forbidden(f"{actor!r} proposed this mapping; four-eyes needs a different reviewer to confirm it")
    contested = crud.disagreement(session, item)
    if contested is not None and actor == contested[0].get("decided_by"):
        raise Forbidden(
            f"{actor!r} and {item.decided_by!r} disagree on {code!r}; a third reviewer confirms one of the proposals"
        )
    add_comment(session, item, actor, comment, "decision.confirm")
    was = current(item)
    state = Decided(
        **(asdict(was) | {"status": item.proposed_status, "proposed_status": None, "confirmed_by": actor})
        | ({"comment": comment} if comment else {})
    )
    return apply(session, item, state, actor, "decision.confirm")


def revert(
    session: Session, project: Project, code: str, actor: str, version: int | None, comment: str | None = None
) -> SourceItem:
    """Undo the item's latest decision: a new audited decision that restores the state before it.

    Nothing is deleted; the log keeps both the decision and its revert (reverting a revert redoes it).
    """
    audit.lock_chain(session)
    item = item_at(session, project, code, version)
    refuse_if_dual(session, item)
    last = crud.latest_decision(session, item)
    if last is None or last.before is None:
        raise Conflict(f"{code!r} has no decision to undo")
    before = json.loads(last.before)
    restored = {name: before.get(name) for name in DECISION_FIELDS}
    if restored["status"] in (Status.new, Status.suggested):  # suggestions may have arrived since
        restored["status"] = Status.suggested if item.suggestion_batch_id else Status.new
    if comment:
        restored["comment"] = comment
    add_comment(session, item, actor, comment, "decision.revert")
    return apply(session, item, Decided(**restored), actor, "decision.revert")


def reopen(
    session: Session,
    item: SourceItem,
    reason: str,
    actor: str,
    *,
    cause: ReopenCause,
    change_kind: str,
    model_version: str | None = None,
    also: dict[str, Any] | None = None,
    **why: Any,
) -> SourceItem:
    """Flag a decided item for another look (a terminology release, a source update or the feed's own data
    changed what it was based on), recording why as a `Reopening` (`why`: its cause-specific columns,
    e.g. `terminology_release_id`, `replacements`).

    The target stays visible beside the reason, so a reviewer sees what was approved and why it is back.
    """
    reopening = Reopening(
        project_id=item.project_id,
        item_id=item.id,
        cause=cause,
        change_kind=change_kind,
        old_status=item.status,
        old_target_code=item.target_code,
        approved_version=item.terminology_version,
        reason=reason,
        created_by=actor,
        **why,
    )
    audit.record(session, actor, "reopening.create", reopening)
    state = Decided(**(asdict(current(item)) | {"status": Status.flagged, "proposed_status": None, "comment": reason}))
    return apply(session, item, state, actor, "item.reopen", model_version=model_version, also=also)


# -- checks every decision makes ----------------------------------------------------------------------
def item_at(session: Session, project: Project, code: str, version: int | None) -> SourceItem:
    """The item, provided the caller decided on its current version (optimistic locking)."""
    item = crud.get_item(session, project, code)
    if version is None:
        raise PreconditionRequired(
            f'say which version of {code!r} you decided on: header If-Match: "{item.version}" or body field version'
        )
    if item.version != version:
        current_item = crud.item_public(session, item).model_dump(mode="json")
        raise StaleVersion(
            f"{code!r} changed since version {version} (now version {item.version}, {item.status} by "
            f"{item.decided_by or 'nobody'}); reload it and decide again",
            {"current": current_item},
        )
    return item


def refuse_if_dual(session: Session, item: SourceItem) -> None:
    """An item under dual independent mapping is decided by its two mappers (or reconciled)."""
    dual = crud.open_dual(session, item)
    if dual is not None:
        raise Conflict(
            f"{item.code!r} is under dual independent mapping ({dual.status}) by {dual.mapper_a} and {dual.mapper_b}; "
            "choose through .../dual/{code}/choices, or reconcile"
        )


def resolve_target(
    session: Session,
    project: Project,
    item: SourceItem,
    action: str,
    target_code: str | None,
    target: TargetTerminology,
) -> Concept | None:
    """The concept an approve or remap maps to (approve defaults to the top suggestion); None otherwise."""
    if action not in NEEDS_TARGET:
        return None
    code = target_code
    if code is None and action == "approve":
        top = crud.current_suggestions(session, item)
        code = top[0].code if top else None
    if code is None:
        what = "remap needs target_code" if action == "remap" else "nothing to approve: no suggestions yet"
        raise Invalid(f"{item.code!r}: {what}; search the target terminology and remap to a concept code")
    concept = target.get(code)
    if concept is None:
        raise Invalid(
            f"{code!r} is not a code of {project.target_terminology}; search for the concept and use its code"
        )
    return concept


def undoable(session: Session, project: Project, actor: str) -> SourceItem | None:
    """The item of this person's latest decision in the project that nothing has changed since.

    Read from the audit log, so undo is a stack across pages and sessions: after a revert (a new event)
    that item no longer qualifies and the decision before it is next. Reverts are not undone this way,
    and only the project's latest UNDO_WINDOW events are searched, so it costs the same at any size.
    """
    recent = select(AuditEvent.seq).where(AuditEvent.project_id == project.id)
    recent = recent.order_by(col(AuditEvent.seq).desc()).limit(UNDO_WINDOW)  # bounded, however big the project
    query = (
        select(AuditEvent)
        .where(
            col(AuditEvent.seq).in_(recent), AuditEvent.actor == actor, col(AuditEvent.action).startswith("decision.")
        )
        .where(AuditEvent.action != "decision.revert")
        .order_by(col(AuditEvent.seq).desc())
        .limit(UNDO_DEPTH)
    )
    for event in session.exec(query):
        item = session.get(SourceItem, audit.row_id(event))
        if item is not None and event.after is not None and json.loads(event.after).get("version") == item.version:
            return item
    return None
