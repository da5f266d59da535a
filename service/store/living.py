"""Tables of living mappings: terminology releases and what they changed, re-opened
mappings, source-list updates, work assignments, and dual independent mapping.

All are audited (`service.audit.record` writes them). JSON columns hold plain data; times are ISO strings.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.store.audited import audited
from service.store.tables import Action, Relationship, Status, utcnow


# -- terminology releases ---------------------------------------------------------------------------
class TerminologyRelease(SQLModel, table=True):
    """A release of a target terminology as the store saw it load; its changes are child rows."""

    __tablename__ = "terminology_release"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)  # catalog name, as in project.target_terminology
    version: str = Field(max_length=200)
    previous_version: str | None = Field(default=None, max_length=200)
    format: str = Field(max_length=40)
    usable_codes: int
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reopened: int = 0
    loaded_at: str = Field(default_factory=utcnow)
    loaded_by: str


class TerminologyChange(SQLModel, table=True):
    __tablename__ = "terminology_change"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="terminology_release.id", index=True)
    code: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # models.release_diff.ChangeKind
    old_display: str | None = Field(default=None, sa_column=Column(Text))
    new_display: str | None = Field(default=None, sa_column=Column(Text))
    replacements: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))


# -- re-opened mappings -----------------------------------------------------------------------------
class ReopenCause(StrEnum):
    terminology = "terminology"  # the target changed in a new terminology release
    source = "source"  # the source text changed in a re-imported source list
    data = "data"  # a monitored feed's data stopped agreeing with the approved target (mapping drift)


class Reopening(SQLModel, table=True):
    """Why an item that had a decision was sent back to review: one row per item and cause."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    cause: str = Field(max_length=20)
    terminology_release_id: int | None = Field(default=None, foreign_key="terminology_release.id")
    source_update_id: int | None = Field(default=None, foreign_key="source_update.id")
    change_kind: str = Field(max_length=20)  # retired/replaced/renamed, or text
    old_status: str = Field(max_length=20)
    old_target_code: str | None = Field(default=None, max_length=200)
    approved_version: str | None = Field(default=None, max_length=200)  # terminology version it was approved against
    reason: str = Field(sa_column=Column(Text, nullable=False))
    replacements: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: str = Field(default_factory=utcnow)
    created_by: str


# -- source-list updates ----------------------------------------------------------------------------
class SourceUpdate(SQLModel, table=True):
    """One re-import of a project's source list: which codes were new, removed or changed."""

    __tablename__ = "source_update"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    codes: dict[str, list[str]] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    carried_forward: int = 0  # decisions kept as they were
    reopened: int = 0
    created_at: str = Field(default_factory=utcnow)
    created_by: str


# -- assignments and dual independent mapping -------------------------------------------------------
class ItemAssignment(SQLModel, table=True):
    """Who is to map an item next (bulk reassign)."""

    __tablename__ = "item_assignment"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="source_item.id", unique=True)
    assignee: str = Field(max_length=200)
    assigned_at: str = Field(default_factory=utcnow)
    assigned_by: str
    version: int = 1


class DualStatus(StrEnum):
    open = "open"  # waiting for one or both mappers
    agreed = "agreed"  # both chose the same; the item is decided
    disagreed = "disagreed"  # waiting for reconciliation
    reconciled = "reconciled"


class DualAssignment(SQLModel, table=True):
    """An item two mappers decide independently; neither sees the other's choice until both chose."""

    __tablename__ = "dual_assignment"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="source_item.id", unique=True)
    mapper_a: str = Field(max_length=200)
    mapper_b: str = Field(max_length=200)
    domain: str = Field(default="", max_length=200)
    status: str = Field(default=DualStatus.open, max_length=20)
    created_at: str = Field(default_factory=utcnow)
    created_by: str
    resolved_by: str | None = None
    resolved_at: str | None = None
    version: int = 1


class BlindChoice(SQLModel, table=True):
    __tablename__ = "blind_choice"
    __table_args__ = (UniqueConstraint("dual_id", "mapper"),)

    id: int | None = Field(default=None, primary_key=True)
    dual_id: int = Field(foreign_key="dual_assignment.id", index=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    mapper: str = Field(max_length=200)
    action: str = Field(max_length=20)
    target_code: str | None = Field(default=None, max_length=200)
    target_display: str | None = Field(default=None, sa_column=Column(Text))
    relationship: str | None = Field(default=None, max_length=40)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    decided_at: str = Field(default_factory=utcnow)
    version: int = 1


audited(TerminologyRelease, "terminology_release", children=(TerminologyChange, "release_id"))
audited(Reopening, "reopening")
audited(SourceUpdate, "source_update")
audited(ItemAssignment, "assignment")
audited(DualAssignment, "dual_assignment")
audited(BlindChoice, "blind_choice")


# -- API shapes -------------------------------------------------------------------------------------
class ChangePublic(SQLModel):
    code: str
    kind: str
    old_display: str | None
    new_display: str | None
    replacements: list[str]
    detail: str


class ReopeningPublic(SQLModel):
    project_id: int
    source_code: str
    cause: str
    change_kind: str
    old_status: str
    old_target_code: str | None
    approved_version: str | None
    reason: str
    replacements: list[str]
    created_at: str
    created_by: str


class TerminologyReleasePublic(SQLModel):
    id: int
    name: str
    version: str
    previous_version: str | None
    format: str
    usable_codes: int
    counts: dict[str, int]
    reopened: int
    loaded_at: str
    loaded_by: str


class TerminologyReleaseDetail(TerminologyReleasePublic):
    changes: list[ChangePublic]
    reopenings: list[ReopeningPublic]


class SourceUpdatePublic(SQLModel):
    id: int
    new: list[str]
    removed: list[str] = Field(description="In the store, not in the file: kept with their decisions, reported.")
    text_changed: list[str] = Field(description="Re-suggested and flagged for review when they had a decision.")
    frequency_changed: list[str]
    context_changed: list[str]
    unchanged: int
    carried_forward: int = Field(description="Decisions kept as they were (equivalence, approver, history).")
    reopened: int
    resuggested: int
    model_version: str | None = None


class ItemFilter(SQLModel):
    """Which items a bulk action touches; every given condition must hold."""

    codes: list[str] | None = Field(default=None, description="Only these source codes.")
    statuses: list[Status] | None = Field(default=None, description="Only items in these statuses.")
    min_frequency: int | None = Field(default=None, ge=0)
    max_frequency: int | None = Field(default=None, ge=0)
    context: dict[str, str] = Field(default_factory=dict, description="Context fields that must equal these values.")
    assignee: str | None = Field(default=None, description="Only items assigned to this person.")
    not_model_version: str | None = Field(
        default=None, description="Only items whose suggestions came from another model."
    )


class BulkApprove(SQLModel):
    filter: ItemFilter = Field(default_factory=ItemFilter)
    min_score: float = Field(
        ge=0, le=1, description="Approve the top suggestion when its calibrated score is at least this."
    )
    comment: str | None = Field(default=None, max_length=4000)


class BulkReassign(SQLModel):
    filter: ItemFilter = Field(default_factory=ItemFilter)
    assignee: str = Field(min_length=1, max_length=200)


class BulkResuggest(SQLModel):
    filter: ItemFilter = Field(default_factory=ItemFilter)
    top_k: int = Field(default=5, ge=1, le=50)


class BulkResult(SQLModel):
    matched: int = Field(description="Items the filter selected.")
    changed: int = Field(description="Items changed (each its own audit event).")
    skipped: dict[str, int] = Field(default_factory=dict, description="Why the others were left alone.")
    model_version: str | None = None


class ReuseOffer(SQLModel):
    """An approval in another project that fits this item, with where it came from."""

    match: str = Field(description="code (same source system and code) or text (near-identical text and context)")
    similarity: float
    project_id: int
    project_name: str
    source_code: str
    source_text: str
    target_code: str
    target_display: str | None
    relationship: str | None
    approved_by: str | None
    confirmed_by: str | None
    decided_at: str | None
    terminology_version: str | None
    release: int | None = Field(description="Latest release of that project carrying this mapping, if any.")


class ItemOffers(SQLModel):
    source_code: str
    source_text: str
    status: str
    offers: list[ReuseOffer]


class BulkReuse(SQLModel):
    filter: ItemFilter = Field(default_factory=ItemFilter)
    min_similarity: float = Field(
        default=1.0, ge=0.9, le=1, description="Take text matches this similar; same-code matches always qualify."
    )
    comment: str | None = Field(default=None, max_length=4000)


class ReuseTake(SQLModel):
    from_project: int
    from_code: str
    version: int | None = Field(default=None, description="Item version decided on (or If-Match).")
    comment: str | None = Field(default=None, max_length=4000)


class DualCreate(SQLModel):
    mappers: list[str] = Field(min_length=2, max_length=2, description="The two mappers (token names), different.")
    filter: ItemFilter = Field(default_factory=ItemFilter)
    domain_key: str = Field(default="domain", max_length=100, description="Context field that names the item's domain.")


class BlindChoiceCreate(SQLModel):
    action: Action
    target_code: str | None = None
    relationship: Relationship | None = None
    comment: str | None = Field(default=None, max_length=4000)


class ChoicePublic(SQLModel):
    mapper: str
    action: str
    target_code: str | None
    target_display: str | None
    relationship: str | None
    comment: str | None
    decided_at: str


class DualPublic(SQLModel):
    source_code: str
    source_text: str
    domain: str
    status: str
    mappers: list[str]
    choices: list[ChoicePublic] = Field(
        description="Your own choice only, until the pair is resolved or you reconcile."
    )
    waiting_for: list[str]


class PairAgreement(SQLModel):
    mappers: list[str]
    domain: str | None = None
    items: int
    agreed: int
    percent_agreement: float | None
    kappa: float | None = Field(description="Cohen's kappa; null when undefined (one category only).")


class AgreementReport(SQLModel):
    pairs: list[PairAgreement]
    domains: list[PairAgreement]
