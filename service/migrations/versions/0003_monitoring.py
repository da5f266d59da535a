"""Monitoring: feeds (reference + contract), their batches and alerts, webhook configs and the webhook outbox.

Revision ID: 0003_monitoring
Revises: 0001
Create Date: 2026-11-25 09:46:10.489171
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003_monitoring"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("mapping_project_id", sa.Integer(), nullable=True),
        sa.Column("mapped_columns", sa.JSON(), nullable=False),
        sa.Column("contract", sa.JSON(), nullable=False),
        sa.Column("reference_filename", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("reference_file", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("reference_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reference_rows", sa.Integer(), nullable=False),
        sa.Column("reference_profile", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("reference_profile_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mapping_project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "feed_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("segment", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("check_name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("column_name", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("first_batch", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("last_batch", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("first_seen", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("last_seen", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("acknowledged_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("resolved_batch", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feed.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    with op.batch_alter_table("feed_alert", schema=None) as batch_op:
        batch_op.create_index("ix_feed_alert_feed_status", ["feed_id", "status"], unique=False)

    op.create_table(
        "feed_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("received_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("profile_file", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("profile_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("report_file", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
        sa.Column("report_note", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feed.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed_id", "number"),
    )
    with op.batch_alter_table("feed_batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_batch_feed_id"), ["feed_id"], unique=False)

    op.create_table(
        "feed_webhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("secret_file", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("secret_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("base_delay", sa.Float(), nullable=False),
        sa.Column("max_delay", sa.Float(), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feed.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed_id", "url"),
    )
    with op.batch_alter_table("feed_webhook", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_webhook_feed_id"), ["feed_id"], unique=False)

    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("alert_uid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("delivered_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feed.id"],
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["feed_webhook.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_delivery_feed_id"), ["feed_id"], unique=False)
        batch_op.create_index("ix_webhook_delivery_status", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_delivery_status")
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_feed_id"))

    op.drop_table("webhook_delivery")
    with op.batch_alter_table("feed_webhook", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_webhook_feed_id"))

    op.drop_table("feed_webhook")
    with op.batch_alter_table("feed_batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_batch_feed_id"))

    op.drop_table("feed_batch")
    with op.batch_alter_table("feed_alert", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_alert_feed_status")

    op.drop_table("feed_alert")
    op.drop_table("feed")
