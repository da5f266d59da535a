"""Feeds linked to a field-mapping project: its approved mappings give the contract's column roles; who set an
explicit contract (an explicit contract is never re-inferred); the roles last applied.

Revision ID: 0008_monitors_field_roles
Revises: 0003_monitoring (it alters the feed table that revision creates)
Create Date: 2026-11-30 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_monitors_field_roles"
down_revision = "0003_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from service.audit import rebaseline

    # plain ADD COLUMNs: a batch (copy-and-move) drops the feed table, which SQLite refuses while batches refer to it
    if op.get_bind().dialect.name == "sqlite":  # SQLite takes REFERENCES on ADD COLUMN but no ALTER of constraints
        op.execute("ALTER TABLE feed ADD COLUMN fields_project_id INTEGER REFERENCES project (id)")
    else:
        op.add_column("feed", sa.Column("fields_project_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_feed_fields_project_id_project", "feed", "project", ["fields_project_id"], ["id"])
    op.add_column("feed", sa.Column("contract_set_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("feed", sa.Column("field_roles", sa.JSON(), nullable=False, server_default="{}"))
    # existing feeds' last audit events predate these columns: record their values so `audit verify` agrees
    rebaseline(
        op.get_bind(),
        "feed",
        "feed",
        {"fields_project_id": None, "contract_set_by": None, "field_roles": {}},
        "migration:0008_monitors_field_roles",
    )


def downgrade() -> None:
    with op.batch_alter_table("feed", schema=None) as batch_op:
        batch_op.drop_constraint("fk_feed_fields_project_id_project", type_="foreignkey")
        batch_op.drop_column("field_roles")
        batch_op.drop_column("contract_set_by")
        batch_op.drop_column("fields_project_id")
