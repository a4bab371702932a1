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
RowHandler = Callable[[GateRow], object]


async def data_version(conn: aiosqlite.Connection) -> int:
    """SQLite's `data_version`: it changes whenever any connection, in any process, commits."""
    async with conn.execute("PRAGMA data_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def load_allowed(conn: aiosqlite.Connection, handle: RowHandler) -> int:
    """Hand every allowed domain row to `handle`; returns the change sequence they are as of.

    The rows and the sequence high-water mark are read in one snapshot.
    """
    placeholders = ", ".join("?" for _ in _ALLOWED_VALUES)
    await conn.execute("BEGIN")
    try:
        async with conn.execute("SELECT coalesce(max(seq), 0) FROM domains") as cursor:
            row = await cursor.fetchone()
        last_seq = int(row[0]) if row else 0
        async with conn.execute(
            f"{GATE_SELECT} WHERE d.status IN ({placeholders})", _ALLOWED_VALUES
        ) as cursor:
            # A chunk at a time, as plain tuples (see the module docstring).
            cursor.row_factory = None
            while rows := await cursor.fetchmany(_LOAD_CHUNK):
                for row in rows:
                    handle(tuple(row))
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
