"""A feed's column roles from the approved mappings of a field-mapping project (`monitors.field_roles`).

Only approved items count: a suggestion, a pending four-eyes proposal or a rejection says nothing about what
a column is. The roles are read each time a feed is created, linked or scored, so a mapping approved later
reaches the contract at the next batch (see `service.monitoring.feeds.refresh_field_roles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session, select

from monitors.field_roles import FieldMapping, FieldRoles, field_roles
from service.crud import MAX_STORED_INT, by_id_or_name
from service.store.errors import Invalid
from service.store.tables import Project, SourceItem, Status


def not_a_fields_project(project: Project, target_models: Sequence[str]) -> str | None:
    """Why `project` cannot hold source-field mappings (its target is no data model); None when it can."""
    if project.target_terminology in target_models:
        return None
    return (
        f"project {project.name!r} maps codes to {project.target_terminology}, not source fields to a data model "
        "such as omop-cdm-5.4 (`crosswalk project create --kind fields --target omop-cdm-5.4 ...`)"
    )


def fields_project(session: Session, home: Path, project_id: int) -> Project:
    """The project a request names, when it maps source fields to a target data model; Invalid (422) otherwise."""
    from service.engine import target_catalog  # the one place that says where loaded models live
    from service.settings import Settings

    project = by_id_or_name(session, Project, project_id) if 0 < project_id <= MAX_STORED_INT else None
    if project is None:
        raise Invalid(f"fields_project_id: no project {project_id}")
    if problem := not_a_fields_project(project, target_catalog(Settings(home=home)).names()):
        raise Invalid(f"fields_project_id: {problem}")
    return project


def approved_field_mappings(session: Session, project_id: int) -> list[FieldMapping]:
    query = select(SourceItem).where(
        SourceItem.project_id == project_id, SourceItem.status == Status.approved, SourceItem.target_code.is_not(None)
    )
    return [
        FieldMapping(
            source=item.code,
            column=(item.context or {}).get("column") or item.code.rpartition(".")[2],
            target=item.target_code,
            decided_by=item.decided_by,
            confirmed_by=item.confirmed_by,
        )
        for item in session.exec(query.order_by(SourceItem.id))
    ]


def roles_for(session: Session, project_id: int | None, columns: Sequence[str]) -> FieldRoles:
    """Roles for a feed's columns from the project's approved field mappings (none without a project)."""
    if project_id is None:
        return FieldRoles()
    return field_roles(approved_field_mappings(session, project_id), columns)
