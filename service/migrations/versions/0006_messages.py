"""Messages: stored HL7 v2 / FHIR messages (compressed, with sha256), dead letters, and item evidence links.

Revision ID: 0006_messages
Revises: 0001
Create Date: 2026-11-29 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006_messages"
down_revision = "0001"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "stored_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", _text(length=64), nullable=False),
        sa.Column("format", _text(length=10), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("origin", _text(length=400), nullable=False),
        sa.Column("received_at", _text(), nullable=False),
        sa.Column("control_id", _text(length=200), nullable=False),
        sa.Column("message_type", _text(length=40), nullable=False),
        sa.Column("site", _text(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("stored_message", schema=None) as batch_op:
        batch_op.create_index("ix_stored_message_feed_batch", ["feed_id", "batch_number"], unique=False)
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("origin", _text(length=400), nullable=False),
        sa.Column("received_at", _text(), nullable=False),
        sa.Column("sha256", _text(length=64), nullable=False),
        sa.Column("control_id", _text(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letter_feed_id"), ["feed_id"], unique=False)
    op.create_table(
        "item_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["source_item.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["stored_message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "message_id"),
    )
    with op.batch_alter_table("item_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_message_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_message_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_table("item_message")
    op.drop_table("dead_letter")
    op.drop_table("stored_message")
