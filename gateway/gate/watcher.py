"""The task that keeps the gate's allowlist current.

On SQLite it polls `PRAGMA data_version` on its own connection (it changes whenever any
connection, in any process, commits) and then reads only the rows whose change sequence
(`domains.seq`, bumped by triggers) is above the last one it saw. The reads themselves are in
`domaingate.store.allowlist`. On PostgreSQL, `sync_for` hands back the LISTEN/NOTIFY follower
(`gateway.gate.follow`) instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiosqlite

from domaingate.store import allowlist as store
from domaingate.store.sqlite.database import open_connection
from gateway.gate.allowlist import Allowlist, Loading, Upstream
from gateway.gate.feed import FeedReads

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1


class Sync(Protocol):
    """What keeps an Allowlist current: this module's SQLite watcher, or PostgreSQL's follower
    (`gateway.gate.follow`)."""

    errors: int

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def poll(self) -> int: ...

    async def caught_up(self) -> bool: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def run(self) -> None: ...


def sync_for(
    db: Path | str,
    allowlist: Allowlist,
    upstream: Upstream,
    *,
    on_error: Callable[[], object] | None = None,
) -> Sync:
    """The watcher for settings.db: a SQLite file, or a PostgreSQL URL (followed by
    LISTEN/NOTIFY; psycopg is loaded only then)."""
    if isinstance(db, str):
        from gateway.gate.follow import PostgresAllowlistSync

        return PostgresAllowlistSync(db, allowlist, upstream, on_error=on_error)
    return AllowlistSync(db, allowlist, upstream, on_error=on_error)


class AllowlistSync:
    """Loads the allowlist and follows the database's changes."""

    def __init__(
        self,
        path: Path,
        allowlist: Allowlist,
        upstream: Upstream,
        *,
        poll_interval: float = POLL_INTERVAL,
        on_error: Callable[[], object] | None = None,
    ):
        self._path = path
        self._on_error = on_error
        self._allowlist = allowlist
        self._upstream = upstream
        self._poll_interval = poll_interval
        self._conn: aiosqlite.Connection | None = None
        self._data_version: int | None = None
        self._reads = FeedReads()
        self.errors = 0

    async def open(self) -> None:
        self._conn = await open_connection(self._path)
        await self._load()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _load(self) -> None:
        conn = self._require_conn()
        self._data_version = await store.data_version(conn)
        loading = Loading(self._allowlist, self._upstream)
        last_seq = await store.load_allowed(conn, loading.apps, loading.chunk)
        self._allowlist.last_seq = last_seq
        self._allowlist.loaded = True
        self._allowlist.synced_at = time.monotonic()

    def _require_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("AllowlistSync is not open")
        return self._conn

    async def poll(self) -> int:
        """Apply changes committed since the last poll; returns how many rows were read."""
        return await self._reads.read(self._read_changes)

    async def caught_up(self) -> bool:
        """Wait (bounded) until every change committed before the call holds in the allowlist;
        False if it does not yet (`gateway.gate.feed`)."""
        return await self._reads.since_now(self._read_changes)

    async def _read_changes(self) -> int:
        conn = self._require_conn()
        version = await store.data_version(conn)
        if version == self._data_version:
            self._allowlist.synced_at = time.monotonic()
            return 0
        rows = await store.changed_since(conn, self._allowlist.last_seq)
        for row in rows:
            self._allowlist.take(row, self._upstream)
            self._allowlist.last_seq = row[7]
        self._data_version = version
        self._allowlist.synced_at = time.monotonic()
        return len(rows)

    async def count_by_status(self) -> dict[str, int]:
        """Domains by status, for /metrics."""
        return await store.count_by_status(self._require_conn())

    async def run(self) -> None:
        """Poll until cancelled. A failing poll is logged and retried: the gate keeps answering
        from what it knows."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self.poll()
            except Exception:
                self.errors += 1
                if self._on_error is not None:
                    self._on_error()
                log.exception("could not read domain changes from %s", self._path)
