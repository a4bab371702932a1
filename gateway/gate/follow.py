"""The gate's allowlist on PostgreSQL: loaded once, then kept current by LISTEN/NOTIFY.

The database's trigger notifies `domaingate_domains` when a transaction that changed what the
gate needs commits; the notification carries a version only, and each wake-up reads the changed
rows from the follower's cursor (`domaingate.store.postgres.changes`, which also catches rows
committed out of sequence order). A notification can be lost while the connection is down: on
reconnecting, the follower reads again from its cursor, and a slow poll (`safety_interval`) reads
anyway when nothing has woken it. Meanwhile the gate answers from what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from domaingate.states import ALLOWED
from domaingate.store.postgres import changes
from domaingate.store.postgres.database import connect
from domaingate.store.targets import described
from gateway.gate.allowlist import Allowlist, Loading, Upstream
from gateway.gate.feed import FeedReads

log = logging.getLogger(__name__)

SAFETY_INTERVAL = 1.0
RECONNECT_DELAY = 0.5
_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)


class PostgresAllowlistSync:
    """Loads the allowlist and follows the database's changes (the SQLite watcher's twin)."""

    def __init__(
        self,
        url: str,
        allowlist: Allowlist,
        upstream: Upstream,
        *,
        safety_interval: float = SAFETY_INTERVAL,
        on_error: Callable[[], object] | None = None,
    ) -> None:
        self._url = url
        self._allowlist = allowlist
        self._upstream = upstream
        self._safety_interval = safety_interval
        self._on_error = on_error
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._cursor: changes.ChangeCursor | None = None
        self._reads = FeedReads()
        self._writer_conn: psycopg.AsyncConnection[Any] | None = None
        # /metrics counts on a connection of its own: the follower's is mostly waiting for a
        # notification, and holds psycopg's connection lock meanwhile.
        self._counts_conn: psycopg.AsyncConnection[Any] | None = None
        self.errors = 0
        self.wakeups = 0

    async def open(self) -> None:
        conn = await self._connect()
        loading = Loading(self._allowlist, self._upstream)
        self._cursor = await changes.load(conn, _ALLOWED_VALUES, loading.apps, loading.chunk)
        self._allowlist.last_seq = self._cursor.seq
        self._allowlist.loaded = True
        self._allowlist.synced_at = time.monotonic()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await connect(self._url)
        try:
            # Listening before reading: a change committed between the two still wakes us.
            await changes.listen(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._counts_conn is not None:
            await self._counts_conn.close()
            self._counts_conn = None
        if self._writer_conn is not None:
            await self._writer_conn.close()
            self._writer_conn = None

    async def count_by_status(self) -> dict[str, int]:
        """Domains by status, for /metrics."""
        if self._counts_conn is None or self._counts_conn.closed:
            self._counts_conn = await connect(self._url)
        try:
            return await changes.count_by_status(self._counts_conn)
        except psycopg.Error:
            await self._counts_conn.close()
            self._counts_conn = None
            raise

    async def poll(self) -> int:
        """Apply changes committed since the last read; returns how many rows were read."""
        return await self._reads.read(self._follow)

    async def caught_up(self) -> bool:
        """Wait (bounded) until every change committed before the call holds in the allowlist;
        False if it does not yet (`gateway.gate.feed`)."""
        return await self._reads.since_now(self._read_for_writer)

    async def _follow(self) -> int:
        if self._conn is None or self._conn.closed:
            await self._drop()
            await self._connect()
        assert self._conn is not None
        return await self._read_on(self._conn)

    async def _read_for_writer(self) -> int:
        # On a connection of its own, opened on the first write: the follower's holds psycopg's
        # lock while it listens, up to the safety interval after the notification it woke for.
        if self._writer_conn is None or self._writer_conn.closed:
            self._writer_conn = await connect(self._url)
        try:
            return await self._read_on(self._writer_conn)
        except psycopg.Error:
            await self._writer_conn.close()
            self._writer_conn = None
            raise

    async def _read_on(self, conn: psycopg.AsyncConnection[Any]) -> int:
        assert self._cursor is not None
        rows, self._cursor = await changes.read_since(conn, self._cursor)
        for row in rows:
            self._allowlist.take(row, self._upstream)
        self._allowlist.last_seq = self._cursor.seq
        self._allowlist.synced_at = time.monotonic()
        return len(rows)

    async def _drop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _wait(self) -> None:
        """Until a notification arrives or the safety interval has passed."""
        assert self._conn is not None
        async for _ in self._conn.notifies(timeout=self._safety_interval, stop_after=1):
            self.wakeups += 1

    async def run(self) -> None:
        """Follow until cancelled. A failure is logged, the connection dropped and made again,
        and the cursor read from again: the gate keeps answering from what it knows."""
        while True:
            try:
                await self.poll()
                await self._wait()
            except Exception as exc:
                self.errors += 1
                if self._on_error is not None:
                    self._on_error()
                log.warning("cannot follow domain changes in %s: %s", described(self._url), exc)
                with contextlib.suppress(Exception):
                    await self._drop()
                await asyncio.sleep(RECONNECT_DELAY)
