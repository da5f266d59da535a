"""Feeds: the Dask cluster that profiles a feed's large batches (default: CROSSWALK_DASK_SCHEDULER).

Revision ID: 0008_dask_feed_scheduler
Revises: 0003_monitoring
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_dask_feed_scheduler"
down_revision = "0003_monitoring"  # builds on the feed table
branch_labels = None
depends_on = None


def upgrade() -> None:
    from service.audit import rebaseline

    # a plain ADD COLUMN: a batch (copy-and-move) would drop a table other tables' rows refer to
    op.add_column("feed", sa.Column("dask_scheduler", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True))
    # existing feeds' last audit events predate the column: record its value so `audit verify` still agrees
    rebaseline(op.get_bind(), "feed", "feed", {"dask_scheduler": None}, "migration:0008_dask_feed_scheduler")


def downgrade() -> None:
    with op.batch_alter_table("feed", schema=None) as batch_op:
        batch_op.drop_column("dask_scheduler")
