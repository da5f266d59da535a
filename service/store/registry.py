"""Model promotions (audited) and the API shapes of the model registry and of lineage.

MLflow holds the models, runs and aliases; the store holds the decision to move `champion`, made by
whom, on which evidence, through `service.audit.record` like every other change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, func
from sqlmodel import Field, Session, SQLModel, col, select

from service.store.audited import audited
from service.store.tables import EntryPublic, utcnow


class ModelPromotion(SQLModel, table=True):
    """One `crosswalk models promote` decision: promoted, or refused by the gate."""

    __tablename__ = "model_promotion"

    id: int | None = Field(default=None, primary_key=True)
    registered_model: str = Field(max_length=200, index=True)
    version: str = Field(max_length=40)
    run_id: str = Field(max_length=64)
    previous_version: str | None = Field(default=None, max_length=40)  # the champion it replaced (None: bundled)
    promoted: bool
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: str = Field(default_factory=utcnow)
    created_by: str


audited(ModelPromotion, "model_promotion")


def promotion_stamp(session: Session) -> int:
    """The id of the latest promotion that moved a champion (0: none yet): a serving process that saw
    another id reloads its models."""
    latest = select(func.max(ModelPromotion.id)).where(col(ModelPromotion.promoted).is_(True))
    return session.exec(latest).one() or 0


class ModelVersionPublic(SQLModel):
    name: str
    version: str
    run_id: str
    aliases: list[str]
    release: str | None = Field(default=None, description="project/number of the release it was trained on.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Held-out metrics of the run.")


class ReloadResult(SQLModel):
    served: dict[str, str] = Field(description="Terminology -> model_version now serving it.")


class LineageSuggestion(SQLModel):
    id: int
    project_id: int
    source_code: str
    rank: int
    code: str
    score: float


class LineageModel(SQLModel):
    model_version: str = Field(description="As stored with the suggestion batch.")
    registered: bool
    name: str | None = None
    version: str | None = None
    aliases: list[str] = Field(default_factory=list)
    promotions: list[dict[str, Any]] = Field(default_factory=list)


class LineageRun(SQLModel):
    run_id: str
    tracking_uri: str
    params: dict[str, str]
    metrics: dict[str, float]
    started: int | None = None


class LineageRelease(SQLModel):
    project_id: int
    number: int
    created_at: str
    created_by: str
    entry_count: int
    data_sha256: str | None = Field(default=None, description="Hash the run logged for its training data.")
    data_sha256_now: str | None = Field(default=None, description="The same hash recomputed from the stored release.")


class Lineage(SQLModel):
    suggestion: LineageSuggestion
    batch_id: int
    batch_created_at: str
    model: LineageModel
    run: LineageRun | None = None
    release: LineageRelease | None = None
    approvals: list[EntryPublic] = Field(default_factory=list, description="The approved entries of that release.")
    note: str | None = None
