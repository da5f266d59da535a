"""The review store: SQLModel tables, the engine (SQLite or PostgreSQL) and the store's errors.

Every write to these tables goes through `service.audit.record`; `service/crud*.py` decide what to write.
"""
