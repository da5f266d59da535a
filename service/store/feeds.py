"""Monitored feeds: their reference and data contract, the batches posted to them, the alerts those
batches raised, webhook configurations and the webhook outbox; plus the API shapes built on them.

Bulky derived data lives in files under CROSSWALK_HOME (the uploaded reference, profiles, Evidently HTML,
webhook secrets); a row holds the file's path relative to the home and, where tampering matters, its sha256,
so the audit log covers the file too. Webhook secrets are never stored in a row: the audit log would copy
them into every event that anyone with the `audit` permission can read.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.store.audited import audited
from service.store.tables import utcnow

ALERT_STATUSES = ("open", "acknowledged", "resolved")
MIN_SECRET_CHARS = 43  # secrets.token_urlsafe(32): 32 random bytes


class Feed(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str | None = Field(default=None, sa_column=Column(Text))
    # Codes with an approved mapping in this review project are "mapped" for the unmapped-code check.
    mapping_project_id: int | None = Field(default=None, foreign_key="project.id")
    mapped_columns: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A field-mapping project whose approved mappings give the contract's column roles (over inference).
    fields_project_id: int | None = Field(default=None, foreign_key="project.id")
    contract: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    contract_set_by: str | None = None  # who replaced the inferred contract; an explicit contract is never re-inferred
    # the roles from approved field mappings the contract was last inferred with (monitors.field_roles.FieldRoles)
    field_roles: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    reference_filename: str = Field(max_length=400)
    reference_file: str = Field(max_length=400)  # relative to CROSSWALK_HOME
    reference_sha256: str = Field(max_length=64)
    reference_rows: int
    reference_profile: str = Field(max_length=400)  # profile of the reference under the current contract
    reference_profile_sha256: str = Field(max_length=64)
    # the Dask cluster that profiles this feed's globs and large files (None: CROSSWALK_DASK_SCHEDULER's)
    dask_scheduler: str | None = Field(default=None, max_length=400)
    created_at: str = Field(default_factory=utcnow)
    created_by: str
    version: int = 1


class FeedBatch(SQLModel, table=True):
    __tablename__ = "feed_batch"
    __table_args__ = (UniqueConstraint("feed_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    number: int  # 1, 2, ... per feed; alerts name batches by it
    filename: str = Field(max_length=400)
    sha256: str = Field(max_length=64)  # of the uploaded bytes
    rows: int
    received_at: str = Field(default_factory=utcnow)
    received_by: str
    profile_file: str = Field(max_length=400)
    profile_sha256: str = Field(max_length=64)
    report_file: str | None = Field(default=None, max_length=400)  # Evidently HTML
    report_note: str | None = Field(default=None, sa_column=Column(Text))  # why there is no HTML report
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    alerts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class FeedAlert(SQLModel, table=True):
    """One `monitors.alerts.Alert`; `uid` is its id there (also in webhook payloads)."""

    __tablename__ = "feed_alert"
    __table_args__ = (Index("ix_feed_alert_feed_status", "feed_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=40, unique=True)
    feed_id: int = Field(foreign_key="feed.id")
    segment: str = Field(max_length=200)
    check_name: str = Field(max_length=60)
    column_name: str = Field(max_length=400)
    severity: str = Field(max_length=20)
    statistic: float | None = None  # None where the check's statistic was not finite
    threshold: float | None = None
    message: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=20)
    first_batch: str = Field(max_length=40)
    last_batch: str = Field(max_length=40)
    first_seen: str
    last_seen: str
    occurrences: int = 1
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    resolved_batch: str | None = Field(default=None, max_length=40)  # set when a clean batch resolved it
    resolved_by: str | None = None  # set when a person resolved it
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class FeedWebhook(SQLModel, table=True):
    __tablename__ = "feed_webhook"
    __table_args__ = (UniqueConstraint("feed_id", "url"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    url: str = Field(max_length=1000)
    secret_file: str = Field(max_length=400)  # relative to CROSSWALK_HOME, mode 0600
    secret_sha256: str = Field(max_length=64)  # a secret file swapped behind the service's back is refused
    max_attempts: int
    base_delay: float
    max_delay: float
    timeout: float
    active: bool = True
    created_at: str = Field(default_factory=utcnow)
    created_by: str


class WebhookDelivery(SQLModel, table=True):
    """The outbox: one signed POST of one alert event to one webhook, retried until delivered or dead."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_status", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    webhook_id: int = Field(foreign_key="feed_webhook.id")
    url: str = Field(max_length=1000)
    event: str = Field(max_length=20)
    alert_uid: str = Field(max_length=40)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the exact bytes signed and sent (UTF-8)
    attempts: int = 0
    status: str = Field(default="pending", max_length=20)
    next_attempt_at: float  # epoch seconds, the clock of monitors.webhooks
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: str = Field(default_factory=utcnow)
    delivered_at: str | None = None


audited(Feed, "feed")
audited(FeedBatch, "feed_batch")
audited(FeedAlert, "feed_alert")
audited(FeedWebhook, "feed_webhook", hidden=("secret_sha256",))
audited(WebhookDelivery, "webhook_delivery")


# -- API shapes -------------------------------------------------------------------------------------
class FeedPublic(SQLModel):
    id: int
    name: str
    description: str | None
    mapping_project_id: int | None
    mapped_columns: list[str]
    fields_project_id: int | None = Field(
        default=None, description="Field-mapping project whose approved mappings give the columns' roles."
    )
    contract_set_by: str | None = Field(
        default=None, description="Who set the contract explicitly; None: inferred (with the field roles)."
    )
    field_roles: dict[str, Any] = Field(
        default_factory=dict, description="Roles from approved field mappings the contract was inferred with."
    )
    segment_columns: list[str]
    reference_filename: str
    reference_rows: int
    dask_scheduler: str | None = None
    created_at: str
    created_by: str
    version: int = Field(description="Send it back as If-Match when editing the contract.")
    batches: int = 0
    active_alerts: dict[str, int] = Field(
        default_factory=dict, description="Open and acknowledged alerts per severity."
    )


class BatchPublic(SQLModel):
    number: int
    filename: str
    sha256: str
    rows: int
    received_at: str
    received_by: str
    has_report: bool = Field(description="An Evidently HTML report is kept for this batch.")
    report_note: str | None
    summary: dict[str, Any] = Field(description="Tests run, alerts per severity, alert events per kind, segments.")
    alerts: list[dict[str, Any]] = Field(
        description="This batch's alerts: check, column, segment, severity, statistic, threshold, message, uid."
    )


class AlertPublic(SQLModel):
    uid: str
    feed: str
    segment: str
    check: str
    column: str
    severity: str
    statistic: float | None
    threshold: float | None
    message: str
    status: str
    first_batch: str
    last_batch: str
    first_seen: str
    last_seen: str
    occurrences: int
    acknowledged_by: str | None
    acknowledged_at: str | None
    resolved_at: str | None
    resolved_batch: str | None
    resolved_by: str | None
    details: dict[str, Any]


class AlertPage(SQLModel):
    total: int
    alerts: list[AlertPublic]


class WebhookCreate(SQLModel):
    url: str = Field(
        min_length=8,
        max_length=1000,
        description="https URL that receives POSTs (http only where CROSSWALK_WEBHOOK_ALLOW_HTTP is set); "
        "private, loopback and link-local hosts only where CROSSWALK_WEBHOOK_ALLOW_HOSTS names them.",
    )
    secret: str = Field(
        min_length=MIN_SECRET_CHARS,
        max_length=200,
        description="Shared secret, at least 32 random bytes (e.g. Python's secrets.token_urlsafe(32)): "
        "bodies are signed with HMAC-SHA256.",
    )
    max_attempts: int = Field(default=8, ge=1, le=50)
    base_delay: float = Field(
        default=2.0, ge=0.01, le=3600, description="Seconds before the 2nd attempt; doubles after each failure."
    )
    max_delay: float = Field(default=600.0, ge=0.01, le=86400)
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _reachable_safely(cls, url: str) -> str:
        """Refused before it is stored; `monitors.webhooks.Sender` checks again at every delivery (DNS changes)."""
        from monitors.webhooks import UnsafeURL, resolve
        from service.settings import get_settings

        try:
            resolve(url, get_settings().webhook_policy)
        except UnsafeURL as error:
            raise ValueError(str(error)) from None
        return url

    @field_validator("secret")
    @classmethod
    def _random_enough(cls, secret: str) -> str:
        # A secret's entropy cannot be measured; a long one made of a few characters is plainly not random.
        if len(set(secret)) < 10:
            raise ValueError("secret looks repetitive; use 32 random bytes, e.g. secrets.token_urlsafe(32)")
        return secret


class WebhookPublic(SQLModel):
    id: int
    url: str
    max_attempts: int
    base_delay: float
    max_delay: float
    timeout: float
    active: bool
    created_at: str
    created_by: str


class DeliveryPublic(SQLModel):
    id: int
    webhook_id: int
    url: str
    event: str
    alert_uid: str
    attempts: int
    status: str
    next_attempt_at: float
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryResult(SQLModel):
    delivered: int
    pending: int
    dead: int
