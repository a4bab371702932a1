"""A hot standby (`DB_READ`, or a `DB` that names one): never migrated, and read only once it
has replayed what the reader needs of its primary.

A standby is read-only and replays its primary's write-ahead log a little behind it. Its schema
is its primary's, so a process that starts on one checks the version instead of migrating. A
write committed on the primary reaches the standby when the standby's replay passes the
primary's WAL position taken after the commit: a writer waiting for its own write to hold at a
gate that follows a standby waits for that first (`replayed`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from domaingate.store.errors import MigrationError, StoreUnavailable
from domaingate.store.migrations import migrations
from domaingate.targets import PostgresServer

# How often a writer waiting for the standby to replay its commit asks how far it has got.
REPLAY_POLL = 0.01


async def _one(conn: psycopg.AsyncConnection[Any], sql: str, params: tuple[Any, ...] = ()) -> Any:
    cursor = await conn.execute(sql, params)
    row = await cursor.fetchone()
    return row[0] if row else None


async def in_recovery(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server is a hot standby (read-only, replaying its primary's changes)."""
    return bool(await _one(conn, "SELECT pg_is_in_recovery()"))


async def check_standby_schema(conn: psycopg.AsyncConnection[Any], server: PostgresServer) -> int:
    """A standby's schema version, which must be this domaingate's: MigrationError, saying
    what to do, if it is behind (migrate the primary) or ahead (upgrade domaingate)."""
    known = len(migrations("postgresql"))
    current = 0
    if await _one(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL"):
        current = int(await _one(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations"))
    if current < known:
        raise MigrationError(
            f"{server} is a hot standby at schema version {current}, behind this domaingate "
            f"({known}); a standby is never migrated: run `domaingate migrate` against its "
            "primary, and start again once the standby has replayed it"
        )
    if current > known:
        raise MigrationError(
            f"{server} is a hot standby at schema version {current}, newer than this "
            f"domaingate ({known}); upgrade domaingate"
        )
    return current


async def current_lsn(primary: psycopg.AsyncConnection[Any]) -> str:
    """The primary's WAL position now: past the commit of every write committed before. The
    insert position, not the write position: an asynchronous commit (synchronous_commit=off)
    may not be written out yet, and is past the write position until it is."""
    return str(await _one(primary, "SELECT pg_current_wal_insert_lsn()::text"))


async def replayed(standby: psycopg.AsyncConnection[Any], lsn: str, patience: float) -> None:
    """Wait until `standby` has replayed the WAL up to `lsn` (a primary answers at once);
    StoreUnavailable if it has not within `patience` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        done = await _one(
            standby,
            "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn",
            (lsn,),
        )
        if done:
            return
        if loop.time() >= deadline:
            raise StoreUnavailable(f"the standby has not replayed {lsn} within {patience:g} s")
        await asyncio.sleep(REPLAY_POLL)
