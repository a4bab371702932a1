"""The store's interfaces: the database the repository's modules run on, and the connection
shape their SQL is written against, whichever backend is behind it.

The store's modules (`domains`, `tenants`, `checks`, …) are the repository the API, the CLI
and the reconciler use; they write their SQL once, with `?` placeholders, against `Connection`
and `Reader`. Each backend is a sibling package that implements `Database` completely:
`domaingate.store.sqlite` (aiosqlite, whose connection has this shape as it is, so SQLite pays
nothing for the seam) and `domaingate.store.postgres` (psycopg, adapted to it). Rows answer by
position and by column name, as `sqlite3.Row` does. Failures come out as
`domaingate.store.errors`, never as a driver's exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol

from domaingate.store.scopes import Scope
from domaingate.targets import DatabaseTarget

# A row: `row[0]` and `row["name"]` both work. Typed loosely because the two drivers' row
# classes share no declared base.
Row = Any

# How long a write waits for its turn (other writers) before it fails as StoreBusy: SQLite's
# busy timeout, PostgreSQL's lock timeout. Then the API answers 503 and the client retries.
WRITE_WAIT_MS = 5000

# Hears of every failed write (a StoreError), whoever started it: the reconciler counts them.
ErrorHook = Callable[[BaseException], object]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> Iterable[Row]: ...

    async def fetchmany(self, size: int | None = None) -> Iterable[Row]: ...

    def __aiter__(self) -> AsyncIterator[Row]: ...


class CursorResult(Protocol):
    """What `execute()` returns: awaited, a cursor; or `async with` it for one that closes."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...

    async def __aenter__(self) -> Cursor: ...

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any: ...


class Connection(Protocol):
    """A connection inside a write transaction (`Database.write()`)."""

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> CursorResult: ...

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor: ...


class Reader(Protocol):
    """Reads outside a write transaction, each seeing the latest commit."""

    def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AbstractAsyncContextManager[Cursor]: ...


class Database(ABC):
    """The process's connections to one database: reads, write transactions, the schema."""

    @property
    @abstractmethod
    def target(self) -> DatabaseTarget:
        """What settings.db named."""

    @property
    @abstractmethod
    def reader(self) -> Reader: ...

    @abstractmethod
    def write(self, *scopes: Scope) -> AbstractAsyncContextManager[Connection]:
        """A write transaction: commits on success, rolls back on any exception. It holds the
        locks of `scopes` (`domaingate.store.scopes`) from its start: writers that share a scope
        take turns, others may run at once. With no scope it waits for every other writer and
        holds them all back, as one writer at a time."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied."""

    @abstractmethod
    async def close(self) -> None: ...

    async def read_number(self, sql: str, parameters: Iterable[Any] = ()) -> int:
        """The one number a query answers (0 when it answers no row)."""
        async with self.reader.execute(sql, parameters) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# One domain as the gate takes it in: (id, hostname, app, status, the app's own upstream, the
# tenant's name, whether the app is the tenant's, change sequence); `apps.GATE_SELECT` reads it.
GateRow = tuple[int, str, str, str, str | None, str, int, int]
# One app as the gate's load takes it in: (app, tenant id, the app's own upstream, the tenant's
# name); and one allowed domain: (id, hostname, app, tenant id).
AppOwner = tuple[str, int, str | None, str]
LoadRow = tuple[int, str, str, int]


class ChangeFeed(ABC):
    """The gate's view of the domains, for one follower (`gateway.gate.follow`): every allowed
    domain loaded once, then the rows changed since, in the order of change, none skipped.

    A feed has connections of its own, never the database's shared ones, so a load of a
    million rows never holds up the API's reads. Rows come back as plain tuples: a million row
    objects held at once cost a second and leave ~200 MB of freed-but-kept memory behind.
    """

    @property
    @abstractmethod
    def seq(self) -> int:
        """The change sequence the rows read so far are as of."""

    @property
    def identity(self) -> str:
        """Which server (or file) the rows read so far came from, as of the last `load()`;
        empty before it, or where the feed cannot tell."""
        return ""

    @abstractmethod
    async def load(
        self,
        take_apps: Callable[[list[AppOwner]], object],
        take_chunk: Callable[[list[LoadRow]], object],
    ) -> None:
        """Hand every app with its owner to `take_apps`, then every allowed domain, a chunk at
        a time, to `take_chunk`, all of one snapshot; changes are read from there on."""

    @abstractmethod
    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        """The rows changed since the last read (their current state, oldest change first).
        FeedDiverged when the server or file is no longer the one loaded from, or its newest
        change is behind what was read: then only `load()` again is right. `aside`: read at
        once, even while `wait()` is under way (a writer waiting for its own commit to hold at
        the gate)."""

    @abstractmethod
    async def wait(self) -> None:
        """Until something may have changed, or a while has passed: reading then finds it."""

    @abstractmethod
    async def reset(self) -> None:
        """Drop the connections after a failure; the next read makes them again and reads on
        from where the feed was (or, after FeedDiverged, the next `load()` starts afresh)."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """Domains by status, for the gate's /metrics (a gate worker has no other
        connection)."""

    @abstractmethod
    async def close(self) -> None: ...
