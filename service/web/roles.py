"""Who may do what: the one table of role -> permissions, enforced by `deps.allow` on every route.

| permission | what it covers                                              | viewer | mapper | reviewer | admin | ops | ml |
|------------|-------------------------------------------------------------|:------:|:------:|:--------:|:-----:|:---:|:--:|
| read       | projects, items, suggestions, search, releases, exports, $translate, item history; feeds, contracts, batches, alerts, Evidently reports, webhook deliveries | x | x | x | x | x | x |
| edit       | create projects, import source codes, generate suggestions  |        | x      | x        | x     |     |    |
| decide     | approve, reject, flag, remap, unmappable                     |        | x      | x        | x     |     |    |
| confirm    | four-eyes confirmation of another person's approval         |        |        | x        | x     |     |    |
| release    | create releases                                              |        |        | x        | x     |     |    |
| audit      | the project-wide audit log and chain verification           |        |        | x        | x     | x   |    |
| admin      | API tokens; archive, unarchive and delete projects           |        |        |          | x     |     |    |
| monitor    | register feeds, edit contracts, post batches, configure webhooks, deliver, acknowledge and resolve alerts |  |  |  | x | x |  |
| models     | train and promote mapping models, reload the served champion |  |  |  | x |  | x |
"""

from __future__ import annotations

from enum import StrEnum

from service.store.tables import Role


class Permission(StrEnum):
    public = "public"  # no token needed (health check)
    read = "read"
    edit = "edit"
    decide = "decide"
    confirm = "confirm"
    release = "release"
    audit = "audit"
    admin = "admin"
    monitor = "monitor"
    models = "models"  # retraining, promotion, reload


_EVERYONE = {Permission.read}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset(_EVERYONE),
    Role.mapper: frozenset(_EVERYONE | {Permission.edit, Permission.decide}),
    Role.reviewer: frozenset(
        _EVERYONE | {Permission.edit, Permission.decide, Permission.confirm, Permission.release, Permission.audit}
    ),
    Role.admin: frozenset(set(Permission) - {Permission.public}),
    Role.ops: frozenset(_EVERYONE | {Permission.audit, Permission.monitor}),
    Role.ml: frozenset(_EVERYONE | {Permission.models}),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission == Permission.public or permission in ROLE_PERMISSIONS[role]


def roles_with(permission: Permission) -> list[str]:
    return [role.value for role in Role if allowed(role, permission)]
