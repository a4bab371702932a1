"""Leases: a named row that one holder at a time may hold until it expires (the reconciler's, and
one per certificate storage: `reconciler.certificates.report`), with a fencing token that grows
at every takeover.

Every time here is the database's own clock (PostgreSQL's `clock_timestamp()`, SQLite's `now`
on its one host), never the caller's: the edges of a fleet may disagree about the time, the
database they share decides when a lease ends. The token counts holders, not renewals: a
renewal keeps it, a takeover by another holder adds one, and a release keeps the row (its expiry
set to the release) so that the count never starts again. `domaingate.store.fencing` checks it
in every write of the holder's jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from domaingate.store.abc import Connection, Database
from domaingate.store.scopes import Scope
from domaingate.targets import DatabaseTarget, PostgresServer

# The reconciler's lease: one reconciler of a fleet works at a time (`reconciler.lease`), and
# the operator's status page shows who holds it (`domaingate.store.overview`).
RECONCILER_LEASE = "reconciler"


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A lease as its holder took or renewed it."""

    token: int
    expires_at: float  # the database's time, seconds since the epoch


def db_now(target: DatabaseTarget) -> str:
    """The SQL of the database's clock in seconds since the epoch. PostgreSQL's
    `clock_timestamp()` rather than `now()`: a transaction that waited for the write lock would
    otherwise date its lease from before the wait."""
    if isinstance(target, PostgresServer):
        return "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


async def idle_at_most(conn: Connection, target: DatabaseTarget, seconds: float) -> None:
    """On PostgreSQL, end this transaction's session if it sits idle inside the transaction for
    `seconds`: a lease holder frozen mid-way (`domaingate.store.fencing`) must not keep the
    write lock, and the lease row, from its successor for as long as it stays frozen."""
    if isinstance(target, PostgresServer):
        await conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', ?, true)",
            (str(max(1, int(seconds * 1000))),),
        )


async def take_lease(db: Database, name: str, holder: str, ttl: float) -> Held | None:
    """Take or renew lease `name` for `holder` until `ttl` seconds from the database's now; the
    lease as held then, or None if another holder has it.

    The read and the write share one write transaction, so two processes cannot both see the
    lease free.
    """
    now = db_now(db.target)
    async with db.write(Scope.row("leases", name)) as conn:
        await idle_at_most(conn, db.target, ttl)
        await conn.execute(
            "INSERT INTO leases (name, holder, expires_at, token)"
            f" VALUES (?, ?, {now} + ?, 1)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at,"
            " token = leases.token + CASE WHEN leases.holder = excluded.holder THEN 0 ELSE 1 END"
            f" WHERE leases.holder = excluded.holder OR leases.expires_at <= {now}",
            (name, holder, ttl),
        )
        async with conn.execute(
            "SELECT holder, expires_at, token FROM leases WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
    if row is None or row["holder"] != holder:
        return None
    return Held(token=int(row["token"]), expires_at=float(row["expires_at"]))


async def release_lease(db: Database, name: str, holder: str, *, idle: float = 30.0) -> None:
    """End `holder`'s lease now; the row and its token stay for the next holder."""
    now = db_now(db.target)
    async with db.write(Scope.row("leases", name)) as conn:
        await idle_at_most(conn, db.target, idle)
        await conn.execute(
            f"UPDATE leases SET expires_at = {now} WHERE name = ? AND holder = ?",
            (name, holder),
        )


async def lease_holder(db: Database, name: str) -> str | None:
    """Who holds lease `name` now, by the database's clock (None: nobody)."""
    async with db.reader.execute(
        f"SELECT holder FROM leases WHERE name = ? AND expires_at > {db_now(db.target)}", (name,)
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row["holder"])


async def token_holds(
    conn: Connection,
    target: DatabaseTarget,
    name: str,
    holder: str,
    token: int,
    *,
    idle_timeout_ms: int = 30_000,
) -> bool:
    """Whether `holder` with `token` is still lease `name`'s holder, inside the write
    transaction of `conn`. On PostgreSQL the row is locked FOR SHARE until the transaction
    ends, so a takeover (an UPDATE of the row) waits for the rest of it, and the same statement
    sets the transaction's `idle_in_transaction_session_timeout` (`domaingate.store.fencing`
    says why); on SQLite the transaction already holds the file's one write lock."""
    if isinstance(target, PostgresServer):
        sql = (
            "SELECT holder, token,"
            " set_config('idle_in_transaction_session_timeout', ?, true)"
            " FROM leases WHERE name = ? FOR SHARE"
        )
        parameters: tuple[object, ...] = (str(idle_timeout_ms), name)
    else:
        sql, parameters = "SELECT holder, token FROM leases WHERE name = ?", (name,)
    async with conn.execute(sql, parameters) as cursor:
        row = await cursor.fetchone()
    return row is not None and row["holder"] == holder and int(row["token"]) == token
