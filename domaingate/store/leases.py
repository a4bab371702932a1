"""Leases: a named row that one holder at a time may hold until it expires (the reconciler's, and
one per certificate storage: `reconciler.certificates.report`)."""

from __future__ import annotations

from domaingate.store.abc import Database
from domaingate.store.scopes import Scope

# The reconciler's lease: one reconciler of a fleet works at a time (`reconciler.lease`), and
# the operator's status page shows who holds it (`domaingate.store.overview`).
RECONCILER_LEASE = "reconciler"


async def take_lease(db: Database, name: str, holder: str, now: float, ttl: float) -> float | None:
    """Take or renew lease `name` for `holder`; its expiry if held now, None if someone else has it.

    The read and the write share one transaction holding the lease's lock (SQLite's
    `BEGIN IMMEDIATE`), so two processes cannot both see the lease free.
    """
    async with db.write(Scope.row("leases", name)) as conn:
        await conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at"
            " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
            (name, holder, now + ttl, now),
        )
        async with conn.execute(
            "SELECT holder, expires_at FROM leases WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
    if row is None or row["holder"] != holder:
        return None
    return float(row["expires_at"])


async def release_lease(db: Database, name: str, holder: str) -> None:
    async with db.write(Scope.row("leases", name)) as conn:
        await conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


async def lease_holder(db: Database, name: str, now: float) -> str | None:
    async with db.reader.execute(
        "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, now)
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row["holder"])
