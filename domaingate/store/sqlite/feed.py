"""The gate's change feed on SQLite: the domains it may allow, then the rows whose change
sequence (`domains.seq`, bumped by triggers) is past the last one read.

It polls `PRAGMA data_version` on its own connection: that changes whenever any connection, in
any process, commits, so an unchanged version costs no read of the table.

A database file replaced under the gate (a restore from a backup) is the analogue of a failover:
the feed's connection would go on reading the old, unlinked file for ever, and the new one's
change counter may be behind what the gate has read. Each poll compares the file's device and
inode with the ones loaded from (one `stat`), and each read the change counter with the feed's
sequence; either differing raises FeedDiverged, and the follower loads the file again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from domaingate.states import ALLOWED
from domaingate.store.abc import AppOwner, ChangeFeed, GateRow, LoadRow
from domaingate.store.apps import GATE_SELECT, OWNERS
from domaingate.store.errors import FeedDiverged
from domaingate.store.sqlite.database import open_connection
from domaingate.store.statuses import COUNT_BY_STATUS

_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)
_LOAD_CHUNK = 10_000
POLL_INTERVAL = 0.1


class SqliteFeed(ChangeFeed):
    def __init__(self, path: Path, *, poll_interval: float = POLL_INTERVAL) -> None:
        self._path = path
        self._poll_interval = poll_interval
        self._conn: aiosqlite.Connection | None = None
        # /metrics counts on a connection of their own: a count reads the whole table, and on
        # the feed's connection the follower's reads would wait behind it.
        self._counts_conn: aiosqlite.Connection | None = None
        self._data_version: int | None = None
        self._seq = 0
        self._identity = ""

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def identity(self) -> str:
        return self._identity

    def _file(self) -> str:
        # A file that cannot be stat'ed has no identity: the read that follows reports why.
        try:
            found = os.stat(self._path)
        except OSError:
            return self._identity
        return f"sqlite:{found.st_dev}:{found.st_ino}"

    async def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            self._conn = await open_connection(self._path)
        return self._conn

    async def _version(self, conn: aiosqlite.Connection) -> int:
        async with conn.execute("PRAGMA data_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def load(
        self,
        take_apps: Callable[[list[AppOwner]], object],
        take_chunk: Callable[[list[LoadRow]], object],
    ) -> None:
        """All of it in one snapshot. The domains are read alone, by a plain scan of the table,
        and joined to their apps in memory by the caller: joining a million rows in SQL to its
        far fewer apps doubles the read, and this load is the gate's start-up."""
        identity = self._file()
        conn = await self._connection()
        self._data_version = await self._version(conn)
        placeholders = ", ".join("?" for _ in _ALLOWED_VALUES)
        await conn.execute("BEGIN")
        try:
            async with conn.execute("SELECT coalesce(max(seq), 0) FROM domains") as cursor:
                row = await cursor.fetchone()
            self._seq = int(row[0]) if row else 0
            async with conn.execute(OWNERS) as cursor:
                cursor.row_factory = None
                take_apps([tuple(owner) for owner in await cursor.fetchall()])
            # NOT INDEXED: allowed domains are most of the table (removed rows are purged), and
            # a scan reads them in the table's order, where the partial index adds a lookup per
            # row.
            async with conn.execute(
                "SELECT id, hostname, app, tenant_id FROM domains NOT INDEXED"
                f" WHERE status IN ({placeholders})",
                _ALLOWED_VALUES,
            ) as cursor:
                # A chunk at a time, as plain tuples (see ChangeFeed).
                cursor.row_factory = None
                while rows := await cursor.fetchmany(_LOAD_CHUNK):
                    take_chunk(rows)  # type: ignore[arg-type]
        finally:
            await conn.execute("COMMIT")
        self._identity = identity

    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        # One connection serves both: aiosqlite runs its statements in turn on its thread, and
        # waiting here is a sleep that holds nothing.
        if self._identity and self._file() != self._identity:
            raise FeedDiverged(f"{self._path} is another file now (replaced: a restore?)")
        conn = await self._connection()
        version = await self._version(conn)
        if version == self._data_version:
            return []
        async with conn.execute("SELECT value FROM change_counter") as cursor:
            row = await cursor.fetchone()
        newest = int(row[0]) if row else 0
        if newest < self._seq:
            raise FeedDiverged(
                f"{self._path}'s newest change is {newest}, behind the {self._seq} the gate read"
            )
        async with conn.execute(
            f"{GATE_SELECT} WHERE d.seq > ? ORDER BY d.seq", (self._seq,)
        ) as cursor:
            cursor.row_factory = None
            rows: list[GateRow] = [tuple(row) for row in await cursor.fetchall()]
        if rows:
            self._seq = rows[-1][7]
        self._data_version = version
        return rows

    async def wait(self) -> None:
        await asyncio.sleep(self._poll_interval)

    async def reset(self) -> None:
        # The file is local: a failed read (locked past the busy timeout, say) would leave the
        # connection fit for the next one, but after a divergence it is open on the old file.
        # A new connection costs little; its first read finds a new data_version and reads on.
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        # data_version compares only on one connection: the next read reads on from `seq`.
        self._data_version = None
        if self._identity and self._file() != self._identity and self._counts_conn is not None:
            await self._counts_conn.close()
            self._counts_conn = None

    async def count_by_status(self) -> dict[str, int]:
        if self._counts_conn is None:
            self._counts_conn = await open_connection(self._path)
        conn = self._counts_conn
        async with conn.execute(COUNT_BY_STATUS) as cursor:
            return {row[0]: row[1] async for row in cursor}

    async def close(self) -> None:
        for conn in (self._conn, self._counts_conn):
            if conn is not None:
                await conn.close()
        self._conn = self._counts_conn = None
