"""The gate's reads: the domains it may allow, and the rows changed since a change sequence.

They run on the gate watcher's own connection (`open_connection`), not the shared reader, so a
load of a million rows never holds up the API's reads. Rows come back as plain tuples
(`GateRow`): a million `sqlite3.Row` objects held at once cost a second and leave ~200 MB of
freed-but-kept memory behind.
"""

from __future__ import annotations

from collections.abc import Callable

import aiosqlite

from domaingate.states import ALLOWED
from domaingate.store.apps import GATE_SELECT

_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)
_LOAD_CHUNK = 10_000

# One domain as the gate takes it in: (id, hostname, app, status, the app's own upstream, the
# tenant's name, whether the app is the tenant's, change sequence); `GATE_SELECT` reads it.
GateRow = tuple[int, str, str, str, str | None, str, int, int]
# One app as the gate's load takes it in: (app, tenant id, the app's own upstream, the tenant's
# name); and one allowed domain: (id, hostname, app, tenant id).
AppOwner = tuple[str, int, str | None, str]
LoadRow = tuple[int, str, str, int]

# Every app with its owner, for the load (SQL both dialects read alike).
OWNERS = (
    "SELECT a.name, a.tenant_id, a.upstream, t.name"
    " FROM apps a JOIN tenants t ON t.id = a.tenant_id"
)


async def data_version(conn: aiosqlite.Connection) -> int:
    """SQLite's `data_version`: it changes whenever any connection, in any process, commits."""
    async with conn.execute("PRAGMA data_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def load_allowed(
    conn: aiosqlite.Connection,
    take_apps: Callable[[list[AppOwner]], object],
    take_chunk: Callable[[list[LoadRow]], object],
) -> int:
    """Hand every app with its owner to `take_apps`, then every allowed domain, a chunk at a
    time, to `take_chunk`; returns the change sequence they are as of.

    All of it is read in one snapshot. The domains are read alone, by a plain scan of the
    table, and joined to their apps in memory by the caller: joining a million rows in SQL to
    its far fewer apps doubles the read, and this load is the gate's start-up.
    """
    placeholders = ", ".join("?" for _ in _ALLOWED_VALUES)
    await conn.execute("BEGIN")
    try:
        async with conn.execute("SELECT coalesce(max(seq), 0) FROM domains") as cursor:
            row = await cursor.fetchone()
        last_seq = int(row[0]) if row else 0
        async with conn.execute(OWNERS) as cursor:
            cursor.row_factory = None
            take_apps([tuple(owner) for owner in await cursor.fetchall()])
        # NOT INDEXED: allowed domains are most of the table (removed rows are purged), and a
        # scan reads them in the table's order, where the partial index adds a lookup per row.
        async with conn.execute(
            "SELECT id, hostname, app, tenant_id FROM domains NOT INDEXED"
            f" WHERE status IN ({placeholders})",
            _ALLOWED_VALUES,
        ) as cursor:
            # A chunk at a time, as plain tuples (see the module docstring).
            cursor.row_factory = None
            while rows := await cursor.fetchmany(_LOAD_CHUNK):
                take_chunk(rows)  # type: ignore[arg-type]
    finally:
        await conn.execute("COMMIT")
    return last_seq


async def changed_since(conn: aiosqlite.Connection, seq: int) -> list[GateRow]:
    """Every row changed after `seq`, in the order of change."""
    async with conn.execute(f"{GATE_SELECT} WHERE d.seq > ? ORDER BY d.seq", (seq,)) as cursor:
        cursor.row_factory = None
        rows = await cursor.fetchall()
    return [tuple(row) for row in rows]


async def count_by_status(conn: aiosqlite.Connection) -> dict[str, int]:
    """Domains by status, for the gate's /metrics (on the watcher's own connection: a gate
    worker has no other)."""
    async with conn.execute("SELECT status, count(*) FROM domains GROUP BY status") as cursor:
        return {row[0]: row[1] async for row in cursor}
