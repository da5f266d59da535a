"""The review store's tables and the API shapes built on them (XBase / XCreate / XPublic / table X).

Timestamps are ISO-8601 UTC strings and JSON columns hold plain data, so that a row reads back
byte-for-byte the same from SQLite and PostgreSQL: the audit log compares rows with their last event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.store.audited import audited


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Role(StrEnum):
    viewer = "viewer"
    mapper = "mapper"
    reviewer = "reviewer"
    admin = "admin"
    ops = "ops"
    ml = "ml"


class Status(StrEnum):
    new = "new"  # imported, no suggestions yet
    suggested = "suggested"
    pending = "pending"  # four-eyes: proposed, waiting for a second reviewer
    approved = "approved"
    rejected = "rejected"
    flagged = "flagged"
    unmappable = "unmappable"


# FHIR R5 ConceptMap relationship codes (R4 equivalences are derived in service/exports/fhir.py).
Relationship = Literal[
    "equivalent",
    "source-is-narrower-than-target",
    "source-is-broader-than-target",
    "related-to",
    "not-related-to",
]
Action = Literal["approve", "reject", "flag", "remap", "unmappable"]
RELEASED = (Status.approved, Status.unmappable)  # the statuses a release snapshots


# -- projects ---------------------------------------------------------------------------------------
class ProjectBase(SQLModel):
    name: str = Field(min_length=1, max_length=200, description="Unique, e.g. 'St Mary LIS lab codes'.")
    source_system: str = Field(min_length=1, max_length=200, description="The system whose codes are mapped.")
    source_uri: str | None = Field(
        default=None, max_length=400, description="FHIR system URI of the source codes (default: a urn)."
    )
    target_terminology: str = Field(min_length=1, max_length=100, description="Catalog name, e.g. icd10cm.")
    four_eyes: bool = Field(default=False, description="Approvals need a second, different reviewer.")
    target_filter: dict[str, str | bool] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description='Only concepts with these attributes are suggested, e.g. {"billable": true} for ICD-10-CM.',
    )


class Project(ProjectBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: str = Field(default_factory=utcnow)
    created_by: str
    # Archived: read-only and hidden from lists by default; what a project with a release becomes
    # instead of being deleted (migration 0008_firsthour_archive).
    archived: bool = False
    version: int = 1


class ProjectCreate(ProjectBase):
    pass


class ProjectUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, description="A new unique name.")
    target_terminology: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Another loaded terminology; only before the first decision.",
    )


class ProjectPublic(ProjectBase):
    id: int
    source_uri: str
    created_at: str
    created_by: str
    archived: bool = Field(description="Read-only and hidden from lists; `project unarchive` restores it.")
    counts: dict[str, int] = Field(default_factory=dict, description="Items per status.")


class ProjectDeleted(SQLModel):
    """What deleting a project removed: the counts its `project.delete` audit event records."""

    id: int
    name: str
    removed: dict[str, int] = Field(description="Rows removed per kind (items, decisions, suggestions, ...).")


# -- source items and their suggestions -------------------------------------------------------------
class SourceItem(SQLModel, table=True):
    __tablename__ = "source_item"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    code: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    frequency: int | None = None
    context: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=Status.new, max_length=20)
    target_code: str | None = Field(default=None, max_length=200)
    target_display: str | None = Field(default=None, sa_column=Column(Text))
    relationship: str | None = Field(default=None, max_length=40)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    proposed_status: str | None = Field(default=None, max_length=20)  # four-eyes: what confirmation yields
    decided_by: str | None = None
    decided_at: str | None = None
    confirmed_by: str | None = None
    suggestion_batch_id: int | None = None
    # the target terminology's release the decision was made against (migration 0004_living)
    terminology_version: str | None = Field(default=None, max_length=200)
    version: int = 1  # bumped by every audited change; decisions must name the version they saw


class SuggestionBatch(SQLModel, table=True):
    __tablename__ = "suggestion_batch"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    model_version: str
    top_k: int
    item_count: int
    created_at: str = Field(default_factory=utcnow)
    created_by: str


class Suggestion(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="suggestion_batch.id", index=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    rank: int
    code: str = Field(max_length=200)
    display: str = Field(sa_column=Column(Text, nullable=False))
    score: float
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SuggestionPublic(SQLModel):
    rank: int
    code: str
    display: str
    score: float
    evidence: dict[str, Any]


class CommentPublic(SQLModel):
    author: str
    text: str
    action: str | None = Field(default=None, description="The decision the comment came with, if any.")
    created_at: str


class CommentCreate(SQLModel):
    text: str = Field(min_length=1, max_length=4000)


class ItemPublic(SQLModel):
    code: str
    text: str
    frequency: int | None
    context: dict[str, str]
    status: Status
    target_code: str | None
    target_display: str | None
    relationship: str | None
    comment: str | None
    proposed_status: str | None
    decided_by: str | None
    decided_at: str | None
    confirmed_by: str | None
    terminology_version: str | None = Field(default=None, description="Target terminology release decided against.")
    version: int = Field(description="Send it back as If-Match (or `version`) with a decision.")
    model_version: str | None = Field(default=None, description="Model that produced the suggestions.")
    confidence: Literal["weak", "confident"] | None = Field(
        default=None,
        description="weak: no confident match (the best candidate's P(correct) is below 0.5, or there is none); "
        "reviewers start there. None until the item has suggestions.",
    )
    suggestions: list[SuggestionPublic] = Field(default_factory=list)
    comments: list[CommentPublic] = Field(
        default_factory=list, description="The item's comment thread, oldest first (single-item responses)."
    )
    disagreement: dict[str, Any] | None = Field(
        default=None, description="Four-eyes: the proposal a counter-proposal disagrees with, until a third confirms."
    )


class ItemPage(SQLModel):
    total: int
    items: list[ItemPublic]


class DecisionCreate(SQLModel):
    action: Action
    target_code: str | None = Field(default=None, description="approve: default the top suggestion; remap: required.")
    relationship: Relationship | None = Field(default=None, description="Default: equivalent (approve, remap).")
    comment: str | None = Field(default=None, max_length=4000)
    version: int | None = Field(default=None, description="Item version the decision was made against (or If-Match).")
    override: bool = Field(
        default=False, description="Replace another reviewer's final decision (refused with 409 unless set)."
    )


class ConfirmationCreate(SQLModel):
    comment: str | None = Field(default=None, max_length=4000)
    version: int | None = Field(default=None, description="Item version confirmed (or If-Match).")


class SuggestRequest(SQLModel):
    top_k: int = Field(default=5, ge=1, le=50)
    codes: list[str] | None = Field(default=None, description="Only these source codes (default: all).")
    only_new: bool = Field(default=False, description="Only items without suggestions yet.")


class SuggestResult(SQLModel):
    batch_id: int | None
    model_version: str
    items: int


class ImportResult(SQLModel):
    created: int
    updated: int
    unchanged: int
    total: int


class SchemaImportResult(ImportResult):
    """A field project's import: one item per source column (`total`), from `tables` tables of `source`."""

    source: str  # the file, folder or database it came from (a URL's password masked)
    tables: int


class DatabaseSource(SQLModel):
    """A database to read a field project's source columns from."""

    url: str = Field(
        min_length=1,
        max_length=2000,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host:5432/ehr (the password is "
        "used to connect, never stored, logged or echoed).",
    )
    db_schema: str | None = Field(
        default=None, min_length=1, max_length=200, description="Database schema to read (default: the URL's)."
    )


class ConceptPublic(SQLModel):
    code: str
    display: str
    score: float | None = None  # the model's probability for a ranked hit; None for code and text matches
    match: Literal["code", "text", "ranked"] | None = None  # how the search found it
    active: bool = True
    status: str | None = None  # the terminology's own status, e.g. LOINC ACTIVE, TRIAL, DISCOURAGED, DEPRECATED
    warning: str | None = None  # why choosing it deserves a second look (discouraged, deprecated, inactive)
    attributes: dict[str, Any] = Field(default_factory=dict)  # class, system, scale, ... where the terminology has them


# -- releases ---------------------------------------------------------------------------------------
class Release(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    number: int
    note: str | None = Field(default=None, sa_column=Column(Text))
    entry_count: int
    created_at: str = Field(default_factory=utcnow)
    created_by: str


class EntryBase(SQLModel):
    source_code: str = Field(max_length=200)
    source_text: str = Field(sa_column=Column(Text, nullable=False))
    frequency: int | None = None
    status: str = Field(max_length=20)
    target_code: str | None = Field(default=None, max_length=200)
    target_display: str | None = Field(default=None, sa_column=Column(Text))
    relationship: str | None = Field(default=None, max_length=40)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    decided_by: str | None = None
    decided_at: str | None = None
    confirmed_by: str | None = None
    model_version: str | None = None


class ReleaseEntry(EntryBase, table=True):
    __tablename__ = "release_entry"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)


class EntryPublic(EntryBase):
    pass


class ReleaseCreate(SQLModel):
    note: str | None = Field(default=None, max_length=4000)


class ReleasePublic(SQLModel):
    number: int
    note: str | None
    entry_count: int
    created_at: str
    created_by: str


class ReleaseDetail(ReleasePublic):
    entries: list[EntryPublic]


class EntryChange(SQLModel):
    before: EntryPublic
    after: EntryPublic


class ReleaseDiff(SQLModel):
    from_number: int
    to_number: int
    added: list[EntryPublic]
    removed: list[EntryPublic]
    changed: list[EntryChange]


# -- API tokens -------------------------------------------------------------------------------------
class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 of the token; the token is never stored
    created_at: str = Field(default_factory=utcnow)
    created_by: str
    revoked: bool = False


class TokenCreate(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class TokenPublic(SQLModel):
    id: int
    name: str
    role: Role
    created_at: str
    created_by: str
    revoked: bool


class TokenCreated(TokenPublic):
    token: str = Field(description="Shown once; only its hash is stored.")


# -- the audit log ----------------------------------------------------------------------------------
class AuditEvent(SQLModel, table=True):
    """Append-only; `hash` = sha256(canonical JSON of the other fields + prev_hash)."""

    __tablename__ = "audit_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    time: str
    actor: str
    action: str = Field(max_length=60)
    entity: str = Field(max_length=80, index=True)  # "<kind>:<id>", e.g. "item:12"
    project_id: int | None = Field(default=None, index=True)
    before: str | None = Field(default=None, sa_column=Column(Text))  # canonical JSON of the row, or null
    after: str | None = Field(default=None, sa_column=Column(Text))
    model_version: str | None = None
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditEventPublic(SQLModel):
    seq: int
    time: str
    actor: str
    action: str
    entity: str
    model_version: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


class VerifyResult(SQLModel):
    ok: bool
    events: int
    first_bad_seq: int | None = None
    problems: list[str] = Field(default_factory=list)


audited(Project, "project")
audited(SourceItem, "item")
audited(SuggestionBatch, "suggestion_batch", children=(Suggestion, "batch_id"))
audited(Release, "release", children=(ReleaseEntry, "release_id"))
audited(ApiToken, "token", hidden=("token_hash",))
