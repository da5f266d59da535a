"""Jobs that several service processes share (`crosswalk serve --workers N`), claimed through the store.

`JobClaims`: each job (one webhook message, ...) is done by whoever claims it first; the others skip it.
On PostgreSQL a claim is a session-level advisory lock, taken on a connection of its own: no row is locked
and no transaction stays open while the job waits for a slow receiver, and a claim ends with the process
that held it (its connection closes), so a crashed worker leaves nothing to clean up. SQLite serves one
process (`serve --workers` refuses more), so there a claim is held in this process's memory.
"""

from __future__ import annotations

import threading
from types import TracebackType

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

WEBHOOK_DELIVERY = 0x63776864  # "cwhd": the kind of one webhook_delivery row's next attempt

_claimed_here: set[tuple[str, int, int]] = set()  # (store, kind, job id) claimed in this process (SQLite)
_claimed_here_lock = threading.Lock()


class JobClaims:
    """Claims on jobs of one `kind` for the length of a `with` block; all are released when it ends."""

    def __init__(self, engine: Engine, kind: int) -> None:
        assert 0 < kind < 2**31, "a kind fills the high half of a 64-bit advisory lock key"
        self.engine, self.kind = engine, kind
        self._in_process = engine.dialect.name != "postgresql"
        self._store = engine.url.render_as_string(hide_password=True)
        self._connection: Connection | None = None  # opened at the first claim: a round with no work costs none
        self._held: set[int] = set()

    def __enter__(self) -> JobClaims:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._in_process:
            for job in list(self._held):
                self.release(job)
            return
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock_all()"))
        except DBAPIError:  # a pooled connection must never keep a claim: drop it instead of returning it
            self._connection.invalidate()
        finally:
            self._held.clear()
            self._connection.close()
            self._connection = None

    def take(self, job: int) -> bool:
        """Claim `job`; False when another worker (or another claim set here) holds it."""
        if job in self._held:
            return False
        if self._in_process:
            with _claimed_here_lock:
                if (self._store, self.kind, job) in _claimed_here:
                    return False
                _claimed_here.add((self._store, self.kind, job))
        elif not self._locks().execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key(job)}).scalar():
            return False
        self._held.add(job)
        return True

    def release(self, job: int) -> None:
        """Let others claim `job` again (after its outcome is committed)."""
        if job not in self._held:
            return
        self._held.discard(job)
        if self._in_process:
            with _claimed_here_lock:
                _claimed_here.discard((self._store, self.kind, job))
        else:
            self._locks().execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key(job)})

    def _locks(self) -> Connection:
        if self._connection is None:
            # autocommit: a claim outlives transactions, and the connection never sits idle in one
            self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _key(self, job: int) -> int:
        # one signed 64-bit key: the kind above, the job id below (ids past 2**32 share keys with
        # earlier ones; a collision only makes a job wait for the next round)
        return (self.kind << 32) | (job & 0xFFFFFFFF)
