"""The gate's change feed on PostgreSQL: loaded once, then followed by LISTEN/NOTIFY.

The database's trigger notifies `domaingate_domains` when a transaction that changed what the
gate needs commits; the notification carries a version only, and each wake-up reads the changed
rows from the feed's cursor (`domaingate.store.postgres.changes`, which also catches rows
committed out of sequence order). A notification can be lost while the connection is down: on
reconnecting, the feed reads again from its cursor, and a slow poll (`safety_interval`) reads
anyway when nothing has woken it. Each read first checks that the server is the one the cursor
was read from and is not behind it (`domaingate.store.postgres.identity`), else FeedDiverged.

Three connections of its own, each opened when first needed: the listening one; one for
`/metrics` counts and one for writers' reads (`aside`), since the listening one is mostly
waiting for a notification and holds psycopg's connection lock meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from domaingate.states import ALLOWED
from domaingate.store.abc import AppOwner, ChangeFeed, GateRow, LoadRow
from domaingate.store.postgres import changes, identity
from domaingate.store.postgres.adapter import store_error
from domaingate.store.postgres.database import connect

SAFETY_INTERVAL = 1.0
_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)

Conn = psycopg.AsyncConnection[Any]


class PostgresFeed(ChangeFeed):
    def __init__(self, url: str, *, safety_interval: float = SAFETY_INTERVAL) -> None:
        self._url = url
        self._safety_interval = safety_interval
        self._conn: Conn | None = None
        self._aside_conn: Conn | None = None
        self._counts_conn: Conn | None = None
        self._cursor = changes.ChangeCursor(seq=0, in_flight=())
        self._identity = ""
        self.wakeups = 0

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def seq(self) -> int:
        return self._cursor.seq

    async def _listening(self) -> Conn:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        await self._drop("_conn")
        conn = await connect(self._url)
        try:
            # Listening before reading: a change committed between the two still wakes us.
            await changes.listen(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _own(self, name: str) -> Conn:
        conn: Conn | None = getattr(self, name)
        if conn is None or conn.closed:
            conn = await connect(self._url)
            setattr(self, name, conn)
        return conn

    async def _drop(self, name: str) -> None:
        conn: Conn | None = getattr(self, name)
        setattr(self, name, None)
        if conn is not None:
            await conn.close()

    async def load(
        self,
        take_apps: Callable[[list[AppOwner]], object],
        take_chunk: Callable[[list[LoadRow]], object],
    ) -> None:
        conn = await self._listening()
        try:
            # The server first: a failover between the two breaks this connection.
            server = await identity.read(conn)
            self._cursor = await changes.load(conn, _ALLOWED_VALUES, take_apps, take_chunk)
        except psycopg.Error as exc:
            raise store_error(exc) from exc
        self._identity = server.identity

    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        name = "_aside_conn" if aside else "_conn"
        conn = await (self._own(name) if aside else self._listening())
        try:
            if self._identity:
                identity.check(await identity.read(conn), identity=self._identity, seq=self.seq)
            rows, self._cursor = await changes.read_since(conn, self._cursor)
        except psycopg.Error as exc:
            if aside:
                await self._drop(name)
            raise store_error(exc) from exc
        return rows

    async def wait(self) -> None:
        """Until a notification arrives or the safety interval has passed."""
        conn = await self._listening()
        try:
            async for _ in conn.notifies(timeout=self._safety_interval, stop_after=1):
                self.wakeups += 1
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def reset(self) -> None:
        await self._drop("_conn")

    async def count_by_status(self) -> dict[str, int]:
        conn = await self._own("_counts_conn")
        try:
            return await changes.count_by_status(conn)
        except psycopg.Error as exc:
            await self._drop("_counts_conn")
            raise store_error(exc) from exc

    async def close(self) -> None:
        for name in ("_conn", "_counts_conn", "_aside_conn"):
            await self._drop(name)
