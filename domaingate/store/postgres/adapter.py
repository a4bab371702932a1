"""psycopg's asyncio connection in the shape the store's queries expect (aiosqlite's).

The store's SQL is written once, with `?` placeholders; here it becomes psycopg's (`%s`, with a
literal `%` doubled), an INSERT into a table with a row id returns it as `lastrowid`, rows answer
by position and by name, and psycopg's errors become the store's (`domaingate.store.errors`):
a violated constraint a StoreConflict, a lost server StoreUnreachable, an aborted transaction
StoreBusy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import RowMaker

from domaingate.store.errors import StoreBusy, StoreConflict, StoreError, StoreUnreachable

# Tables whose INSERT hands back the new row's id (SQLite's lastrowid).
_ID_TABLES = frozenset({"tenants", "domains"})
_INSERT_INTO = re.compile(r"\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> tuple[str, bool]:
    """(psycopg's SQL, whether it returns the new row's id) for the store's `sql`."""
    out: list[str] = []
    quote = ""
    for char in sql:
        if quote:
            out.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    text = "".join(out)
    match = _INSERT_INTO.match(text)
    returns_id = bool(match and match.group(1).lower() in _ID_TABLES)
    if returns_id and " returning " not in text.lower():
        text += " RETURNING id"
    return text, returns_id


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    index = {name: position for position, name in enumerate(names)}

    class Row(tuple[Any, ...]):
        """A row read by position (`row[0]`) or by column name (`row["status"]`)."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def row_factory(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[Any]:
    """psycopg row factory: rows with both index and key access."""
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(column.name for column in description))
    return cls


def store_error(exc: psycopg.Error) -> StoreError:
    """The store's exception for a psycopg error (raise it `from exc`)."""
    if isinstance(exc, pg_errors.IntegrityError):
        return StoreConflict(str(exc))
    if isinstance(
        exc,
        pg_errors.SerializationFailure
        | pg_errors.DeadlockDetected
        | pg_errors.LockNotAvailable
        | pg_errors.QueryCanceled,
    ):
        return StoreBusy(str(exc))
    # The server ending a session left idle inside its transaction (a client frozen mid-way,
    # domaingate.store.fencing) is a lost connection like any other.
    if isinstance(
        exc,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | pg_errors.IdleInTransactionSessionTimeout,
    ):
        return StoreUnreachable(str(exc).strip() or type(exc).__name__)
    return StoreError(str(exc).strip() or type(exc).__name__)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise store_error(exc) from exc


class Cursor:
    """A finished statement's result (psycopg fetches it whole: fetching never waits)."""

    __slots__ = ("_cursor", "_lastrowid")

    def __init__(self, cursor: psycopg.AsyncCursor[Any], lastrowid: int | None) -> None:
        self._cursor = cursor
        self._lastrowid = lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    async def fetchone(self) -> Any:
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return await self._cursor.fetchall()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return await self._cursor.fetchmany(size or self._cursor.arraysize)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._cursor.__aiter__()

    async def close(self) -> None:
        await self._cursor.close()


class Execution:
    """`conn.execute(...)`: await it for the cursor, or `async with` it to close the cursor."""

    __slots__ = ("_cursor", "_pending")

    def __init__(self, pending: Callable[[], Any]) -> None:
        self._pending = pending
        self._cursor: Cursor | None = None

    def __await__(self) -> Generator[Any, None, Cursor]:
        cursor: Cursor = yield from self._pending().__await__()
        return cursor

    async def __aenter__(self) -> Cursor:
        self._cursor = await self
        return self._cursor

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class Connection:
    """A psycopg connection seen through the store's `Connection` protocol."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.AsyncConnection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Execution:
        return Execution(lambda: self._execute(sql, parameters))

    async def _execute(self, sql: str, parameters: Iterable[Any] | None) -> Cursor:
        text, returns_id = translate(sql)
        params: Sequence[Any] | None = None if parameters is None else tuple(parameters)
        with translated():
            cursor = self.raw.cursor()
            await cursor.execute(text, params)
            lastrowid = None
            if returns_id:
                row = await cursor.fetchone()
                lastrowid = int(row[0]) if row is not None else None
        return Cursor(cursor, lastrowid)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        text, _ = translate(sql)
        rows = [tuple(row) for row in parameters]
        with translated():
            cursor = self.raw.cursor()
            if rows:
                await cursor.executemany(text, rows)
        return Cursor(cursor, None)
