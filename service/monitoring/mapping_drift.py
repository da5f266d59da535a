"""Mapping drift in the service: when a monitored batch shows that an approved local code's data stopped
agreeing with its target (monitors.mapping_drift), the mapping is sent back to review with that
evidence, through the same decision path as a terminology or source update, and one alert says so.

A feed takes part when it names its review project (`mapping_project_id`); the targets' expectations
(LOINC PROPERTY, example units) come from the project's target terminology.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, col, select

from models.terminology import Concept
from monitors.alerts import Alert
from monitors.contract import Contract
from monitors.mapping_drift import ApprovedMapping, MappingDriftEvidence, detect_mapping_drift
from monitors.profile import Profile
from service import decisions
from service.store.feeds import Feed
from service.store.living import ReopenCause
from service.store.tables import Project, SourceItem, Status

CHECK = "mapping_drift"


def approved_mappings(
    session: Session, project: Project, concept: Callable[[str], Concept | None]
) -> list[ApprovedMapping]:
    """The project's approved mappings with what each target expects of the data (LOINC axes, units)."""
    query = select(SourceItem).where(SourceItem.project_id == project.id, SourceItem.status == Status.approved)
    out = []
    for item in session.exec(query.where(col(SourceItem.target_code).is_not(None))):
        target = concept(item.target_code) if item.target_code else None
        attributes = target.attributes if target is not None else {}
        units = [u.strip() for u in str(attributes.get("units") or "").replace(";", ",").split(",") if u.strip()]
        out.append(ApprovedMapping(item.code, item.target_code, attributes.get("property"), units))
    return out


def reopen_drifting(
    session: Session,
    feed: Feed,
    batch: str,
    reference: Profile,
    current: Profile,
    contract: Contract,
    concept: Callable[[str], Concept | None],
    actor: str,
) -> list[Alert]:
    """Re-open every approved mapping whose data drifted in this batch; one alert per drifting code."""
    project = session.get(Project, feed.mapping_project_id) if feed.mapping_project_id else None
    if project is None or project.archived:  # an archived project is read-only: nothing re-opens there
        return []
    mappings = approved_mappings(session, project, concept)
    if not mappings:
        return []
    segment = contract.segment_columns[0] if contract.segment_columns else None
    evidence = detect_mapping_drift(reference, current, contract, mappings, segment=segment)
    return [_reopen(session, project, feed, batch, found, actor) for found in evidence]


def _reopen(
    session: Session, project: Project, feed: Feed, batch: str, found: MappingDriftEvidence, actor: str
) -> Alert:
    item = session.exec(
        select(SourceItem).where(SourceItem.project_id == project.id, SourceItem.code == found.code)
    ).one()
    reason = f"mapping drift in feed {feed.name!r} batch {batch}: " + "; ".join(found.reasons)
    kind = "unit" if found.severity == "critical" else "values"
    decisions.reopen(
        session,
        item,
        reason,
        actor,
        cause=ReopenCause.data,
        change_kind=kind,
        model_version=f"feed:{feed.name}#{batch}",
    )
    return Alert(
        feed=feed.name,
        segment=found.segment,
        check=CHECK,
        column=found.code,
        severity=found.severity,
        statistic=float(found.figures.get("unit_share", 1.0)),
        threshold=0.0,
        message=f"{found.code} -> {found.target}: " + "; ".join(found.reasons) + " (re-opened for review)",
        details={
            "project_id": project.id,
            "code": found.code,
            "target": found.target,
            "figures": _plain(found.figures),
        },
    )


def _plain(figures: dict) -> dict:
    """JSON-ready figures (numpy numbers as floats)."""
    return {k: float(v) if hasattr(v, "item") and not isinstance(v, str) else v for k, v in figures.items()}


def target_concepts(project_terminology: str, read: Callable[[str], object]) -> Callable[[str], Concept | None]:
    """A concept lookup in the project's target terminology; none (no expectations) when it is not loaded."""
    try:
        terminology = read(project_terminology)
    except LookupError:
        return lambda code: None
    return terminology.get
