"""A database that was unreachable when its process started, opened in the background.

The gateway must start even while PostgreSQL is down (its gate serves from a snapshot), but
opening the database migrates it first, and nothing can be read or written before. Until the
open succeeds, every operation fails as StoreUnreachable (the API answers 503
STORE_UNAVAILABLE, as for an outage later on); it is retried with a back-off with jitter
(`domaingate.backoff`), and from then on everything goes to the opened database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from domaingate import backoff
from domaingate.store.abc import Connection, Cursor, Database, Reader
from domaingate.store.errors import MigrationError, StoreUnreachable
from domaingate.store.scopes import Scope
from domaingate.targets import DatabaseTarget, described

log = logging.getLogger(__name__)

Opener = Callable[[], Awaitable[Database]]


class _LateReader(Reader):
    def __init__(self, late: LateDatabase) -> None:
        self._late = late

    @asynccontextmanager
    async def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AsyncIterator[Cursor]:
        async with self._late.opened().reader.execute(sql, parameters) as cursor:
            yield cursor


class LateDatabase(Database):
    """`opener`'s database once it has opened; StoreUnreachable for everything before."""

    def __init__(self, target: DatabaseTarget, opener: Opener) -> None:
        self._target = target
        self._opener = opener
        self._db: Database | None = None
        self._reader = _LateReader(self)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin trying to open it, in the background."""
        self._task = asyncio.create_task(self._open(), name="database-open")

    async def _open(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
            try:
                self._db = await self._opener()
            except StoreUnreachable as exc:
                log.warning("%s; retrying", exc)
                continue
            except MigrationError:
                # Not an outage: the daemon cannot run on this database at all.
                log.exception("cannot open %s", described(self._target))
                raise
            log.info("database %s reachable: the API serves", described(self._target))
            return

    def opened(self) -> Database:
        if self._db is None:
            raise StoreUnreachable(f"{described(self._target)} has not been reachable yet")
        return self._db

    @property
    def target(self) -> DatabaseTarget:
        return self._target

    @property
    def reader(self) -> Reader:
        return self._reader

    def write(self, *scopes: Scope) -> AbstractAsyncContextManager[Connection]:
        return self.opened().write(*scopes)

    async def schema_version(self) -> int:
        return await self.opened().schema_version()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._db is not None:
            await self._db.close()
