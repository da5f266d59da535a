"""The review store: SQLModel tables, the engine (SQLite or PostgreSQL) and the store's errors.

Every write to these tables goes through `service.audit.record`; `service/crud*.py` decide what to write.
`tables` holds the review tables; a feature with tables of its own adds a module here and imports it
below, so that the schema (Alembic) and the audit check (`audited.AUDITED`) always see all of them.
"""

from service.store import (  # noqa: F401  (each registers its tables)
    feeds,
    living,
    messages,
    registry,
    review,
    sessions,
    tables,
)
