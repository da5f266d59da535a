"""UI sessions: server-side browser sessions (a random id's hash, the token that signed in, expiry, end).

Revision ID: 0007_sessions
Revises: 0001
Create Date: 2026-11-29 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007_sessions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_hash"),
    )
    with op.batch_alter_table("ui_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ui_session_token_id"), ["token_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ui_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ui_session_token_id"))
    op.drop_table("ui_session")
