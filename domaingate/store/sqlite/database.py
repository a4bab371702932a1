"""The SQLite database: connections, pragmas, migrations, write transactions, and the
translation of `sqlite3`'s errors into the store's (`domaingate.store.errors`).

One writer connection per process, serialised by an asyncio lock and `BEGIN IMMEDIATE` (which
also serialises against other processes through SQLite's own lock), and a separate reader
connection so that a read never sees another task's uncommitted write; reads take turns on it
(`SqliteReader`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from domaingate.store import upgrades
from domaingate.store.abc import WRITE_WAIT_MS, Connection, Cursor, Database, ErrorHook, Reader
from domaingate.store.errors import (
    MigrationError,
    StoreBusy,
    StoreConflict,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from domaingate.store.migrations import migrations
from domaingate.store.scopes import Scope
from domaingate.targets import SqliteFile

BUSY_TIMEOUT_MS = WRITE_WAIT_MS


def store_error(exc: sqlite3.Error) -> StoreError:
    """The store's exception for a `sqlite3` error (raise it `from exc`)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(str(exc))
    if not isinstance(exc, sqlite3.OperationalError):
        # Corrupt file, misuse: not an operating condition a retry mends.
        return StoreError(str(exc))
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended result codes (SQLITE_BUSY_SNAPSHOT, …) keep the primary code in the low byte.
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreBusy(str(exc))
    if primary == sqlite3.SQLITE_FULL:
        return StoreFull(str(exc))
    return StoreUnavailable(str(exc))


async def _connect(path: Path) -> aiosqlite.Connection:
    # isolation_level=None: transactions are explicit, never opened behind our back.
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    # FULL: an acknowledged write survives power loss, not only a process crash.
    await conn.execute("PRAGMA synchronous = FULL")
    return conn


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply pending migrations; returns the schema version. Safe to run from several processes."""
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        known = migrations()
        if current > len(known):
            raise MigrationError(
                f"the database is at schema version {current}, newer than this domaingate "
                f"({len(known)}); upgrade domaingate"
            )
        for version, _name, sql in known[current:]:
            refusal = await upgrades.refusal(conn, version)
            if refusal is not None:
                raise MigrationError(f"cannot upgrade to schema version {version}: {refusal}")
            for statement in _statements(sql):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {version}")
            current = version
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    return current


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT on its own; split on complete statements instead so the whole
    # migration runs in our transaction.
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        statements.append(buffer.strip())
    return statements


class SqliteReader(Reader):
    """The reader connection, one statement at a time.

    SQLite keeps a connection's read snapshot while any of its statements is unfinished, and a
    statement started meanwhile reads from that snapshot too. With tasks interleaving their reads
    on one connection, a snapshot could stay open for as long as reads kept overlapping, and a
    request could miss what the same client's previous request had just committed (a 201, then a
    404 for the name). Taking turns, every read starts from the latest commit.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AsyncIterator[Cursor]:
        async with self._lock:
            try:
                async with self._conn.execute(sql, parameters) as cursor:
                    yield cursor
            except sqlite3.Error as exc:
                raise store_error(exc) from exc


class SqliteDatabase(Database):
    """The process's connections to one SQLite file.

    `on_error` hears of every write that failed in SQLite itself (locked past the busy timeout,
    disk full, I/O error), whoever started it: the reconciler counts them in its metrics.
    """

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        *,
        on_error: ErrorHook | None = None,
    ):
        self.path = path
        self._writer = writer
        self._reader_conn = reader
        self._reader = SqliteReader(reader)
        self._lock = asyncio.Lock()
        self._on_error = on_error

    @classmethod
    async def open(cls, path: Path, *, on_error: ErrorHook | None = None) -> SqliteDatabase:
        """Open (and migrate) the file at `path`, making its folder if needed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await _connect(path)
        except sqlite3.Error as exc:
            raise store_error(exc) from exc
        try:
            await migrate(writer)
            reader = await _connect(path)
        except BaseException as exc:
            await writer.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc) from exc
            raise
        return cls(path, writer, reader, on_error=on_error)

    async def close(self) -> None:
        await self._reader_conn.close()
        await self._writer.close()

    @property
    def target(self) -> SqliteFile:
        return SqliteFile(self.path)

    @property
    def reader(self) -> SqliteReader:
        return self._reader

    async def schema_version(self) -> int:
        return await self.read_number("PRAGMA user_version")

    @asynccontextmanager
    async def write(self, *scopes: Scope) -> AsyncIterator[Connection]:
        # One file, one writer: BEGIN IMMEDIATE holds every scope at once.
        del scopes
        async with self._lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
            try:
                yield self._writer
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                # A failed COMMIT (disk full, say) leaves the transaction open: end it here so the
                # connection is usable again.
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._failed(exc) from exc
                raise

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        error = store_error(exc)
        if self._on_error is not None and isinstance(error, StoreUnavailable):
            self._on_error(error)
        return error


async def open_connection(path: Path) -> aiosqlite.Connection:
    """A plain connection with the project's pragmas, for the gate's follower and tools."""
    return await _connect(path)
