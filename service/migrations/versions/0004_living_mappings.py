"""Living mappings: terminology releases and their changes, re-openings, source updates, assignments,
dual independent mapping; source_item.terminology_version.

Revision ID: 0004_living
Revises: 0001
Create Date: 2026-11-25 10:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004_living"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminology_release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("previous_version", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("usable_codes", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("loaded_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("terminology_release", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terminology_release_name"), ["name"], unique=False)

    op.create_table(
        "source_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("codes", sa.JSON(), nullable=False),
        sa.Column("carried_forward", sa.Integer(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("source_update", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_update_project_id"), ["project_id"], unique=False)

    op.create_table(
        "terminology_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("old_display", sa.Text(), nullable=True),
        sa.Column("new_display", sa.Text(), nullable=True),
        sa.Column("replacements", sa.JSON(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["terminology_release.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("terminology_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terminology_change_release_id"), ["release_id"], unique=False)

    op.create_table(
        "dual_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("mapper_a", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("mapper_b", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["source_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id"),
    )
    with op.batch_alter_table("dual_assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dual_assignment_project_id"), ["project_id"], unique=False)

    op.create_table(
        "item_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("assigned_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("assigned_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["source_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id"),
    )
    with op.batch_alter_table("item_assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_assignment_project_id"), ["project_id"], unique=False)

    op.create_table(
        "reopening",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("terminology_release_id", sa.Integer(), nullable=True),
        sa.Column("source_update_id", sa.Integer(), nullable=True),
        sa.Column("change_kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("old_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("old_target_code", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("approved_version", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("replacements", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["source_item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.ForeignKeyConstraint(
            ["source_update_id"],
            ["source_update.id"],
        ),
        sa.ForeignKeyConstraint(
            ["terminology_release_id"],
            ["terminology_release.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reopening", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reopening_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reopening_project_id"), ["project_id"], unique=False)

    op.create_table(
        "blind_choice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dual_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("mapper", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("target_code", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("target_display", sa.Text(), nullable=True),
        sa.Column("relationship", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dual_id"],
            ["dual_assignment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dual_id", "mapper"),
    )
    with op.batch_alter_table("blind_choice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blind_choice_dual_id"), ["dual_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blind_choice_project_id"), ["project_id"], unique=False)

    with op.batch_alter_table("source_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("terminology_version", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
    _rebaseline_items()


def _rebaseline_items() -> None:
    """Items that exist before this migration gain a column their last audit event does not show."""
    from service.audit import rebaseline

    rebaseline(op.get_bind(), "source_item", "item", {"terminology_version": None}, "migration:0004_living")


def downgrade() -> None:
    with op.batch_alter_table("source_item", schema=None) as batch_op:
        batch_op.drop_column("terminology_version")
    for table, indexes in (
        ("blind_choice", ("ix_blind_choice_project_id", "ix_blind_choice_dual_id")),
        ("reopening", ("ix_reopening_project_id", "ix_reopening_item_id")),
        ("item_assignment", ("ix_item_assignment_project_id",)),
        ("dual_assignment", ("ix_dual_assignment_project_id",)),
        ("terminology_change", ("ix_terminology_change_release_id",)),
        ("source_update", ("ix_source_update_project_id",)),
        ("terminology_release", ("ix_terminology_release_name",)),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)
        op.drop_table(table)
