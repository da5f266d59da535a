"""The review store: SQLModel tables, the engine (SQLite or PostgreSQL) and the store's errors.

Every write to these tables goes through `service.audit.record`; `service/crud*.py` decide what to write.
`tables` holds the review tables; a feature with tables of its own adds a module here and imports it
below, so that the schema (Alembic) and the audit check (`audited.AUDITED`) always see all of them.
"""

from service.store import tables  # noqa: F401
from service.store import feeds  # noqa: F401  (monitored feeds, batches, alerts, webhooks: issue 4)
from service.store import living  # noqa: F401  (terminology releases, source updates, reuse, dual mapping: issue 7)
from service.store import registry  # noqa: F401  (model promotions: issue 5)
