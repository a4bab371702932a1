"""The store's failures, one tree whichever database is behind it.

Each backend turns its driver's exceptions into these at its edge (`domaingate.store.sqlite`,
`domaingate.store.postgres`), so that no caller reads a failure as `sqlite3` or `psycopg`.
`StoreUnavailable` and its kinds are operating conditions (locked, full, unreachable): the
operation did not happen, and the caller answers 503 or retries. A `StoreConflict` is a violated
constraint, such as a second live claim of one name inserted by a rival writer.
"""

from __future__ import annotations

# Why a database operation failed, as logs and metrics name it. `unreachable`: PostgreSQL's
# server could not be reached, or the connection to it was lost.
FAILURE_CAUSES = ("locked", "full", "unreachable", "other")


class StoreError(Exception):
    """The database failed to do what it was asked (the base of the tree)."""


class StoreUnavailable(StoreError):
    """The operation did not happen for an operating condition; trying again later may work.
    `cause` is one of FAILURE_CAUSES."""

    cause = "other"


class StoreBusy(StoreUnavailable):
    """Other writers held the database past the write's wait (SQLite's busy timeout), or
    PostgreSQL gave up on the transaction (serialisation failure, deadlock, lock timeout)."""

    cause = "locked"


class StoreFull(StoreUnavailable):
    """No space left for the write."""

    cause = "full"


class StoreUnreachable(StoreUnavailable):
    """The database server cannot be reached, or the connection to it was lost."""

    cause = "unreachable"


class StoreConflict(StoreError):
    """A write broke a constraint (a unique name, a foreign key)."""


class FeedDiverged(StoreError):
    """A change feed's cursor no longer describes the server it reads: another server answers
    (a failover, a restore), or the server's newest change is behind the cursor. What the reader
    holds may include changes this server never had: it must load everything again, never read
    on from the cursor."""


class LeaseLost(StoreError):
    """A write of a lease holder's work refused: its fencing token is no longer the lease's
    (another holder took over), or it holds no lease at all. Nothing of it was written.
    `token`: the token the write carried (None: it carried none)."""

    def __init__(self, message: str, *, token: int | None = None) -> None:
        super().__init__(message)
        self.token = token


class MigrationError(StoreError):
    """The schema cannot be brought to this version (newer than the code, or an upgrade's
    precondition does not hold)."""


def failure_cause(exc: BaseException) -> str:
    """`locked`, `full`, `unreachable` or `other`: how logs and metrics name a failure."""
    return exc.cause if isinstance(exc, StoreUnavailable) else "other"
