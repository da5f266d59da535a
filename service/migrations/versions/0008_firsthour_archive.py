"""Archived projects: project.archived (read-only, hidden from lists), what a released project becomes
instead of being deleted.

Revision ID: 0008_firsthour_archive
Revises: 0001
Create Date: 2026-11-30 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_firsthour_archive"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from service.audit import rebaseline

    # a plain ADD COLUMN: a batch (copy-and-move) would drop a table other tables' rows refer to
    op.add_column("project", sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()))
    rebaseline(op.get_bind(), "project", "project", {"archived": False}, "migration:0008_firsthour_archive")


def downgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("archived")
