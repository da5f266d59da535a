"""Bulk actions over a filtered set of items, each item its own audited event.

- approve: the top suggestion of every selected item whose calibrated score (the fusion's
  P(correct)) reaches the threshold, through the same `decisions.decide` as a single approval
  (four-eyes projects get pending proposals; stale versions cannot happen under the lock);
- reassign: who maps the items next (`item_assignment`);
- re-suggest: fresh suggestions from the current model version, one audited batch.
Items under dual independent mapping are left to their two mappers.
"""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, select

from service import audit, crud, decisions
from service.crud_imports import SuggesterLike, generate_suggestions
from service.decisions import TargetTerminology
from service.living.filters import select_items
from service.store.living import BulkApprove, BulkReassign, BulkResuggest, BulkResult, ItemAssignment
from service.store.tables import DecisionCreate, Project, Status, SuggestRequest, utcnow

APPROVABLE = [Status.suggested]  # the default: machine suggestions nobody has decided yet


def approve(
    session: Session,
    project: Project,
    request: BulkApprove,
    actor: str,
    target: TargetTerminology,
) -> BulkResult:
    audit.lock_chain(session)
    wanted = (
        request.filter
        if request.filter.statuses is not None
        else request.filter.model_copy(update={"statuses": APPROVABLE})
    )
    items = select_items(session, project, wanted)
    skipped: Counter[str] = Counter()
    changed = 0
    for item in items:
        top = crud.current_suggestions(session, item)[:1]
        if crud.open_dual(session, item) is not None:
            skipped["under dual mapping"] += 1
        elif not top:
            skipped["no suggestions"] += 1
        elif top[0].score < request.min_score:
            skipped["below min_score"] += 1
        else:
            note = f"bulk approval: top suggestion score {top[0].score:.3f} >= {request.min_score:g}"
            decision = DecisionCreate(action="approve", target_code=top[0].code, comment=_with(note, request.comment))
            decisions.decide(session, project, item.code, decision, actor, item.version, target)
            changed += 1
    return BulkResult(matched=len(items), changed=changed, skipped=dict(skipped))


def reassign(session: Session, project: Project, request: BulkReassign, actor: str) -> BulkResult:
    audit.lock_chain(session)
    items = select_items(session, project, request.filter)
    current = {
        a.item_id: a for a in session.exec(select(ItemAssignment).where(ItemAssignment.project_id == project.id))
    }
    changed = 0
    for item in items:
        assignment = current.get(item.id) or ItemAssignment(
            project_id=project.id, item_id=item.id, assignee="", assigned_by=actor
        )
        if assignment.id is not None and assignment.assignee == request.assignee:
            continue
        fields = {"assignee": request.assignee, "assigned_by": actor, "assigned_at": utcnow()}
        audit.record(session, actor, "assignment.set", assignment, fields)
        changed += 1
    return BulkResult(
        matched=len(items),
        changed=changed,
        skipped={"already assigned": len(items) - changed} if len(items) > changed else {},
    )


def resuggest(
    session: Session, project: Project, request: BulkResuggest, suggester: SuggesterLike, actor: str
) -> BulkResult:
    items = select_items(session, project, request.filter)
    if not items:
        return BulkResult(matched=0, changed=0, model_version=suggester.model_version)
    result = generate_suggestions(
        session, project, suggester, SuggestRequest(top_k=request.top_k, codes=[i.code for i in items]), actor
    )
    return BulkResult(matched=len(items), changed=result.items, model_version=result.model_version)


def _with(note: str, comment: str | None) -> str:
    return f"{note}; {comment}" if comment else note
