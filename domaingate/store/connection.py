"""What the store's queries need of a connection, whichever database is behind it.

aiosqlite's connection has this shape as it is (SQLite pays nothing for the seam); the PostgreSQL
backend (`domaingate.store.postgres`) adapts psycopg's to it. Rows answer by position and by
column name, as `sqlite3.Row` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from typing import Any, Protocol

# A row: `row[0]` and `row["name"]` both work. Typed loosely because the two drivers' row
# classes share no declared base.
Row = Any


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
