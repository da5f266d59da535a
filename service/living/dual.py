"""Dual independent mapping: two mappers decide an item blind; agreement is measured; a third
person reconciles disagreements with both choices side by side.

Blindness: a choice is visible to its own mapper only while the pair is open; once both chose
(agreed or disagreed) everyone with read access sees both. Each mapper chooses once, so the
recorded agreement is the independent one. When both agree the item is decided (the second
mapper stands in for four-eyes confirmation); when they differ it waits for reconciliation by
someone outside the pair.

Agreement compares the concept chosen (approve/remap: the target code; otherwise the action:
unmappable, reject, flag): percent agreement and Cohen's kappa (scikit-learn) per mapper pair
and per domain (the item's context field named at assignment, e.g. `domain`).
"""

from __future__ import annotations

import math
from collections import defaultdict

from sklearn.metrics import cohen_kappa_score
from sqlmodel import Session, select

from models.terminology import Concept
from service import audit, crud, decisions
from service.decisions import TargetTerminology
from service.living.filters import select_items
from service.store.errors import Conflict, Forbidden, Invalid, NotFound
from service.store.living import (
    AgreementReport,
    BlindChoice,
    BlindChoiceCreate,
    ChoicePublic,
    DualAssignment,
    DualCreate,
    DualPublic,
    DualStatus,
    PairAgreement,
)
from service.store.tables import AuditEventPublic, Project, SourceItem, Status, utcnow

OPEN_TO_DUAL = (Status.new, Status.suggested, Status.flagged)  # items not yet decided


# -- assigning --------------------------------------------------------------------------------------
def assign(session: Session, project: Project, data: DualCreate, actor: str) -> list[DualAssignment]:
    """Put the filtered, undecided items under dual mapping by the two named mappers."""
    first, second = (m.strip() for m in data.mappers)
    if not first or not second or first == second:
        raise Invalid("dual mapping needs two different mappers, e.g. mappers: ['ana', 'ben']")
    wanted = (
        data.filter
        if data.filter.statuses is not None
        else data.filter.model_copy(update={"statuses": list(OPEN_TO_DUAL)})
    )
    audit.lock_chain(session)
    taken = set(session.exec(select(DualAssignment.item_id).where(DualAssignment.project_id == project.id)))
    created = []
    for item in select_items(session, project, wanted):
        if item.id in taken:
            continue
        dual = DualAssignment(
            project_id=project.id,
            item_id=item.id,
            mapper_a=first,
            mapper_b=second,
            domain=item.context.get(data.domain_key, ""),
            created_by=actor,
        )
        audit.record(session, actor, "dual.assign", dual)
        created.append(dual)
    return created


def dual_of(session: Session, project: Project, code: str) -> tuple[DualAssignment, SourceItem]:
    item = crud.get_item(session, project, code)
    dual = session.exec(select(DualAssignment).where(DualAssignment.item_id == item.id)).first()
    if dual is None:
        raise NotFound(f"{code!r} is not under dual mapping in project {project.name!r}")
    return dual, item


# -- choosing blind ---------------------------------------------------------------------------------
def choose(
    session: Session,
    project: Project,
    code: str,
    choice: BlindChoiceCreate,
    mapper: str,
    target: TargetTerminology,
) -> DualAssignment:
    audit.lock_chain(session)
    dual, item = dual_of(session, project, code)
    if mapper not in (dual.mapper_a, dual.mapper_b):
        raise Forbidden(f"{code!r} is dual-mapped by {dual.mapper_a} and {dual.mapper_b}, not {mapper!r}")
    if dual.status != DualStatus.open:
        raise Conflict(f"{code!r} is {dual.status}; both mappers have chosen")
    if _choice_of(session, dual, mapper) is not None:
        raise Conflict(f"{mapper!r} already chose for {code!r}; a blind choice is final so agreement stays independent")
    concept = decisions.resolve_target(session, project, item, choice.action, choice.target_code, target)
    row = BlindChoice(
        dual_id=dual.id,
        project_id=project.id,
        mapper=mapper,
        action=choice.action,
        target_code=concept.code if concept else None,
        target_display=concept.display if concept else None,
        relationship=_relationship(choice),
        comment=choice.comment,
    )
    audit.record(session, mapper, "dual.choose", row)
    other = _choice_of(session, dual, dual.mapper_b if mapper == dual.mapper_a else dual.mapper_a)
    if other is not None:
        first, second = _choice_of(session, dual, dual.mapper_a), _choice_of(session, dual, dual.mapper_b)
        _settle(session, project, dual, item, first, second, target.version, mapper)
    return dual


def _relationship(choice: BlindChoiceCreate) -> str | None:
    if choice.action in ("approve", "remap"):
        return choice.relationship or "equivalent"
    return choice.relationship or ("not-related-to" if choice.action == "unmappable" else None)


def _choice_of(session: Session, dual: DualAssignment, mapper: str) -> BlindChoice | None:
    return session.exec(select(BlindChoice).where(BlindChoice.dual_id == dual.id, BlindChoice.mapper == mapper)).first()


def label(choice: BlindChoice) -> str:
    """What agreement compares: the concept for a mapping, else the action."""
    return choice.target_code if choice.action in ("approve", "remap") and choice.target_code else choice.action


def _settle(
    session: Session,
    project: Project,
    dual: DualAssignment,
    item: SourceItem,
    a: BlindChoice,
    b: BlindChoice,
    terminology_version: str | None,
    actor: str,
) -> None:
    """Both have chosen (`actor` second): agreement decides the item, a difference waits for reconciliation."""
    if label(a) != label(b):
        audit.record(session, actor, "dual.disagree", dual, {"status": DualStatus.disagreed})
        return
    comment = f"dual independent mapping: {a.mapper} and {b.mapper} agreed"
    chosen = Concept(a.target_code, a.target_display or "") if a.target_code else None
    _decide(session, project, item, a, chosen, a.mapper, b.mapper, comment, "decision.dual_agree", terminology_version)
    audit.record(
        session,
        actor,
        "dual.agree",
        dual,
        {"status": DualStatus.agreed, "resolved_by": "agreement", "resolved_at": utcnow()},
    )


def _decide(
    session: Session,
    project: Project,
    item: SourceItem,
    choice: BlindChoice | BlindChoiceCreate,
    concept: Concept | None,
    decided_by: str,
    confirmed_by: str | None,
    comment: str,
    action: str,
    terminology_version: str | None,
) -> None:
    """The pair's agreed (or the reconciler's) choice becomes the item's final decision: no four-eyes
    proposal, since a second person has already looked."""
    state = decisions.outcome(
        project,
        item,
        choice.action,
        actor=decided_by,
        target=concept,
        relationship=choice.relationship,
        comment=comment + (f"; {choice.comment}" if choice.comment else ""),
        terminology_version=terminology_version,
        confirmed_by=confirmed_by,
        final=True,
    )
    decisions.apply(session, item, state, decided_by, action)


# -- reconciling ------------------------------------------------------------------------------------
def reconcile(
    session: Session,
    project: Project,
    code: str,
    choice: BlindChoiceCreate,
    actor: str,
    target: TargetTerminology,
) -> DualAssignment:
    """Someone outside the pair decides a disagreement, having seen both choices."""
    audit.lock_chain(session)
    dual, item = dual_of(session, project, code)
    if dual.status != DualStatus.disagreed:
        raise Conflict(f"{code!r} is {dual.status}; only a disagreement is reconciled")
    if actor in (dual.mapper_a, dual.mapper_b):
        raise Forbidden(f"{actor!r} chose for {code!r}; a reconciler must be someone outside the pair")
    concept = decisions.resolve_target(session, project, item, choice.action, choice.target_code, target)
    resolved = BlindChoiceCreate(
        action=choice.action,
        target_code=concept.code if concept else None,
        relationship=_relationship(choice),
        comment=choice.comment,
    )
    a, b = _choice_of(session, dual, dual.mapper_a), _choice_of(session, dual, dual.mapper_b)
    comment = f"reconciled: {a.mapper} chose {label(a)}, {b.mapper} chose {label(b)}"
    _decide(session, project, item, resolved, concept, actor, None, comment, "decision.reconcile", target.version)
    audit.record(
        session,
        actor,
        "dual.reconcile",
        dual,
        {"status": DualStatus.reconciled, "resolved_by": actor, "resolved_at": utcnow()},
    )
    return dual


# -- reading ----------------------------------------------------------------------------------------
def dual_public(session: Session, dual: DualAssignment, item: SourceItem, viewer: str) -> DualPublic:
    """Both choices once the pair is settled; until then only the viewer's own."""
    choices = [_choice_of(session, dual, m) for m in (dual.mapper_a, dual.mapper_b)]
    visible = [c for c in choices if c is not None and (dual.status != DualStatus.open or c.mapper == viewer)]
    return DualPublic(
        source_code=item.code,
        source_text=item.text,
        domain=dual.domain,
        status=dual.status,
        mappers=[dual.mapper_a, dual.mapper_b],
        choices=[ChoicePublic.model_validate(c) for c in visible],
        waiting_for=[m for m, c in zip((dual.mapper_a, dual.mapper_b), choices) if c is None],
    )


def list_duals(session: Session, project: Project, viewer: str, status: DualStatus | None = None) -> list[DualPublic]:
    query = select(DualAssignment, SourceItem).join(SourceItem, SourceItem.id == DualAssignment.item_id)
    query = query.where(DualAssignment.project_id == project.id).order_by(SourceItem.code)
    if status is not None:
        query = query.where(DualAssignment.status == status)
    return [dual_public(session, d, i, viewer) for d, i in session.exec(query)]


def agreement(session: Session, project: Project) -> AgreementReport:
    """Percent agreement and Cohen's kappa over items both mappers chose, per pair and per domain."""
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    domains: dict[str, list[tuple[str, str]]] = defaultdict(list)
    domain_mappers: dict[str, set[str]] = defaultdict(set)
    query = select(DualAssignment).where(DualAssignment.project_id == project.id).order_by(DualAssignment.id)
    for dual in session.exec(query):
        a, b = _choice_of(session, dual, dual.mapper_a), _choice_of(session, dual, dual.mapper_b)
        if a is None or b is None:
            continue
        (first, x), (second, y) = sorted([(a.mapper, label(a)), (b.mapper, label(b))])
        pairs[(first, second)].append((x, y))
        domains[dual.domain].append((x, y))
        domain_mappers[dual.domain] |= {first, second}
    return AgreementReport(
        pairs=[_stats(list(k), None, v) for k, v in sorted(pairs.items())],
        domains=[_stats(sorted(domain_mappers[d]), d, v) for d, v in sorted(domains.items())],
    )


def _stats(mappers: list[str], domain: str | None, labels: list[tuple[str, str]]) -> PairAgreement:
    xs, ys = [x for x, _ in labels], [y for _, y in labels]
    agreed = sum(x == y for x, y in labels)
    kappa = None
    if len(set(xs) | set(ys)) > 1:  # one category only: chance agreement is 1 and kappa is undefined
        value = float(cohen_kappa_score(xs, ys))
        kappa = None if math.isnan(value) else round(value, 4)
    return PairAgreement(
        mappers=mappers,
        domain=domain,
        items=len(labels),
        agreed=agreed,
        percent_agreement=round(100 * agreed / len(labels), 2) if labels else None,
        kappa=kappa,
    )


def withhold_open_choices(session: Session, events: list[AuditEventPublic], viewer: str) -> list[AuditEventPublic]:
    """The audit log, read by one of a pair, shows the other's blind choice only once the pair is settled."""
    out = []
    for event in events:
        kind, _, ident = event.entity.partition(":")
        choice = session.get(BlindChoice, int(ident)) if kind == "blind_choice" and ident.isdigit() else None
        dual = session.get(DualAssignment, choice.dual_id) if choice is not None else None
        hidden = dual is not None and dual.status == DualStatus.open and choice.mapper != viewer
        if hidden and viewer in (dual.mapper_a, dual.mapper_b):
            withheld = {"withheld": "the other mapper's blind choice, until both have chosen"}
            event = event.model_copy(update={"before": None, "after": withheld})
        out.append(event)
    return out
