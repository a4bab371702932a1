"""The database: SQLite (connections, pragmas, migrations, write transactions) and the choice of
backend. `Database.open(settings.db)` opens SQLite for a path and PostgreSQL for a URL
(`domaingate.store.postgres`, loaded only then); both hand the store the same connection shape
(`domaingate.store.connection`), so its SQL is written once.

On SQLite: one writer connection per process, serialised by an asyncio lock and `BEGIN
IMMEDIATE` (which also serialises against other processes through SQLite's own lock), and a
separate reader connection so that a read never sees another task's uncommitted write; reads take
turns on it (`Reader`).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiosqlite

from domaingate.store import upgrades
from domaingate.store.connection import Connection, Cursor

Clock = Callable[[], float]
# Why a database operation failed, as logs and metrics name it. `unreachable`: PostgreSQL's
# server could not be reached, or the connection to it was lost.
FAILURE_CAUSES = ("locked", "full", "unreachable", "other")

_PASSWORD_PARAMETER = re.compile(r"((?:^|&)password=)[^&]*")
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
BUSY_TIMEOUT_MS = 5000


class MigrationError(RuntimeError):
    pass


def described(target: Path | str) -> str:
    """settings.db for messages and logs: the file, or the URL without its password."""
    if not isinstance(target, str):
        return str(target)
    parts = urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = _PASSWORD_PARAMETER.sub(r"\1***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class StoreUnreachable(sqlite3.OperationalError):
    """The database server cannot be reached (PostgreSQL). An OperationalError, as a locked
    SQLite file is: callers that already answer 503 or retry on one do the same here."""


class StoreBusy(sqlite3.OperationalError):
    """PostgreSQL gave up on the transaction (serialisation failure, deadlock, lock timeout)."""


def failure_cause(exc: BaseException) -> str:
    """`locked` (busy past the busy timeout), `full` (no space left), `unreachable` or `other`."""
    if isinstance(exc, StoreUnreachable):
        return "unreachable"
    if isinstance(exc, StoreBusy):
        return "locked"
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended result codes (SQLITE_BUSY_SNAPSHOT, …) keep the primary code in the low byte.
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "locked"
    if primary == sqlite3.SQLITE_FULL:
        return "full"
    return "other"


def migrations(dialect: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration of `dialect`, in order: SQLite's are the
    files of the `sql` package, PostgreSQL's those of its `postgresql` folder."""
    found = []
    folder = importlib.resources.files("domaingate.sql")
    if dialect != "sqlite":
        folder = folder / dialect
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 001, 002, … without gaps: {versions}")
    return found


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


ErrorHook = Callable[[sqlite3.OperationalError], object]


class Reader:
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
        async with self._lock, self._conn.execute(sql, parameters) as cursor:
            yield cursor


class Database:
    """The process's connections to one SQLite file (or, as `PostgresDatabase`, a server).

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
        self._reader = Reader(reader)
        self._lock = asyncio.Lock()
        self._on_error = on_error

    @classmethod
    async def open(cls, target: Path | str, *, on_error: ErrorHook | None = None) -> Database:
        """Open `target`: a SQLite file path, or a PostgreSQL URL (settings.db)."""
        if isinstance(target, str):
            from domaingate.store.postgres.database import PostgresDatabase

            return await PostgresDatabase.connect(target, on_error=on_error)
        return await cls._open_sqlite(target, on_error=on_error)

    @classmethod
    async def _open_sqlite(cls, path: Path, *, on_error: ErrorHook | None = None) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        try:
            await migrate(writer)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader, on_error=on_error)

    async def close(self) -> None:
        await self._reader_conn.close()
        await self._writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def target(self) -> Path | str:
        """What settings.db named: the file, or the server's URL."""
        return self.path

    @property
    def reader(self) -> Reader:
        return self._reader

    async def schema_version(self) -> int:
        """The highest migration applied."""
        async with self._reader.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """A write transaction: commits on success, rolls back on any exception."""
        async with self._lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._failed(exc)
                raise
            try:
                yield self._writer
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    self._failed(exc)
                # A failed COMMIT (disk full, say) leaves the transaction open: end it here so the
                # connection is usable again.
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                raise

    def _failed(self, exc: sqlite3.OperationalError) -> None:
        if self._on_error is not None:
            self._on_error(exc)


async def open_connection(path: Path) -> aiosqlite.Connection:
    """A plain connection with the project's pragmas, for watchers and tools."""
    return await _connect(path)


async def read_number(db: Database, sql: str, parameters: Iterable[Any] = ()) -> int:
    """The one number a query answers (0 when it answers no row)."""
    async with db.reader.execute(sql, parameters) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def schema_version(db: Database) -> int:
    """The schema version the database is at (its migrations applied)."""
    return await db.schema_version()
