"""Model registry: promotions of trained mapping models (the models themselves live in MLflow).

Revision ID: 0002_models
Revises: 0001
Create Date: 2026-11-25 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002_models"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_promotion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registered_model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("previous_version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_promotion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_promotion_registered_model"), ["registered_model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_promotion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_promotion_registered_model"))
    op.drop_table("model_promotion")
