"""The gate's in-memory view of allowed hostnames, and the task that keeps it current.

The gate answers from this dict alone: no DNS, no disk, no lock on the request path. A watcher
polls `PRAGMA data_version` on its own connection (it changes whenever any connection, in any
process, commits) and then reads only the rows whose change sequence (`domains.seq`, bumped by
triggers) is above the last one it saw.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiosqlite

from domaingate.states import ALLOWED
from domaingate.store.database import open_connection

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
_LOAD_CHUNK = 10_000
_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)


class Allowlist:
    """hostname → (domain id, app) for every domain the gate may allow."""

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[int, str]] = {}
        self.last_seq = 0
        self.loaded = False
        self.synced_at = 0.0

    def __len__(self) -> int:
        return len(self._hosts)

    def app_for(self, hostname: str) -> str | None:
        entry = self._hosts.get(hostname)
        return entry[1] if entry is not None else None

    def __contains__(self, hostname: object) -> bool:
        return hostname in self._hosts

    def apply(self, domain_id: int, hostname: str, app: str, status: str) -> None:
        """Take in one domain row's current state."""
        if status in _ALLOWED_VALUES:
            # Interned: a million domains share a handful of app names.
            self._hosts[hostname] = (domain_id, sys.intern(app))
            return
        entry = self._hosts.get(hostname)
        # Only the row that granted the entry may withdraw it: an old removed row of the same
        # hostname must not revoke a newer, live claim.
        if entry is not None and entry[0] == domain_id:
            del self._hosts[hostname]


class Sync(Protocol):
    """What keeps an Allowlist current: this module's SQLite watcher, or PostgreSQL's
    (`gateway.gate.follow`)."""

    errors: int

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def poll(self) -> int: ...

    async def run(self) -> None: ...


def sync_for(
    db: Path | str, allowlist: Allowlist, *, on_error: Callable[[], object] | None = None
) -> Sync:
    """The watcher for settings.db: a SQLite file, or a PostgreSQL URL."""
    if isinstance(db, str):
        from gateway.gate.follow import PostgresAllowlistSync

        return PostgresAllowlistSync(db, allowlist, on_error=on_error)
    return AllowlistSync(db, allowlist, on_error=on_error)


class AllowlistSync:
    """Loads the allowlist and follows the database's changes."""

    def __init__(
        self,
        path: Path,
        allowlist: Allowlist,
        *,
        poll_interval: float = POLL_INTERVAL,
        on_error: Callable[[], object] | None = None,
    ):
        self._path = path
        self._on_error = on_error
        self._allowlist = allowlist
        self._poll_interval = poll_interval
        self._conn: aiosqlite.Connection | None = None
        self._data_version: int | None = None
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
        self._data_version = await self._read_data_version()
        placeholders = ", ".join("?" for _ in _ALLOWED_VALUES)
        # One snapshot for the rows and the sequence high-water mark.
        await conn.execute("BEGIN")
        try:
            async with conn.execute("SELECT coalesce(max(seq), 0) FROM domains") as cursor:
                row = await cursor.fetchone()
            last_seq = int(row[0]) if row else 0
            async with conn.execute(
                f"SELECT id, hostname, app, status FROM domains WHERE status IN ({placeholders})",
                _ALLOWED_VALUES,
            ) as cursor:
                # Plain tuples, a chunk at a time: a million sqlite3.Row objects held at once
                # cost a second and leave ~200 MB of freed-but-kept memory behind.
                cursor.row_factory = None
                while rows := await cursor.fetchmany(_LOAD_CHUNK):
                    for domain_id, hostname, app, status in rows:
                        self._allowlist.apply(domain_id, hostname, app, status)
        finally:
            await conn.execute("COMMIT")
        self._allowlist.last_seq = last_seq
        self._allowlist.loaded = True
        self._allowlist.synced_at = time.monotonic()

    def _require_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("AllowlistSync is not open")
        return self._conn

    async def _read_data_version(self) -> int:
        async with self._require_conn().execute("PRAGMA data_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def poll(self) -> int:
        """Apply changes committed since the last poll; returns how many rows were read."""
        version = await self._read_data_version()
        if version == self._data_version:
            self._allowlist.synced_at = time.monotonic()
            return 0
        async with self._require_conn().execute(
            "SELECT id, hostname, app, status, seq FROM domains WHERE seq > ? ORDER BY seq",
            (self._allowlist.last_seq,),
        ) as cursor:
            rows = list(await cursor.fetchall())
        for domain_id, hostname, app, status, seq in rows:
            self._allowlist.apply(domain_id, hostname, app, status)
            self._allowlist.last_seq = seq
        self._data_version = version
        self._allowlist.synced_at = time.monotonic()
        return len(rows)

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
