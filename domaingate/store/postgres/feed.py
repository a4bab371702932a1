"""The gate's change feed on PostgreSQL: loaded once, then followed by polling its cursor, with
LISTEN/NOTIFY as a hint to read at once.

Each read takes the rows past the feed's cursor (`domaingate.store.postgres.changes`, which also
catches rows committed out of sequence order): an index range scan of `domains.seq`, nearly free
when nothing changed. The feed reads every `poll_interval` (0.25 s: a change reaches the gate
within the 1 s contract with margin, whatever else happens), and at once when the database's
trigger notifies `domaingate_domains`. The notification is only a hint: none arrives through a
pooler in transaction mode (PgBouncer accepts LISTEN and delivers nothing), a hot standby takes
no LISTEN, and one can be lost while the connection is down; the poll covers all three.
Each read first checks that the server is the one the cursor was read from and is not
behind it (`domaingate.store.postgres.identity`), else FeedDiverged.

Followed from a hot standby (`DB_READ`, `primary` naming `DB`): no LISTEN, and each read first
waits for the standby to replay the primary's WAL up to where the primary was when the read
began (`domaingate.store.postgres.standby`), so a read begun after a write (a writer waiting for
its own commit to hold at the gate) includes it, and a standby too far behind fails the read.

Connections of its own, each opened when first needed: the follower's; one for writers' reads
(`aside`) and `/metrics` counts, since the follower's is mostly waiting for a notification and
holds psycopg's connection lock meanwhile; and, from a standby, one to the primary for its WAL
position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from domaingate.states import ALLOWED
from domaingate.store.abc import AppOwner, ChangeFeed, GateRow, LoadRow
from domaingate.store.postgres import changes, identity, standby
from domaingate.store.postgres.adapter import store_error
from domaingate.store.postgres.database import connect

POLL_INTERVAL = 0.25
# How long a read waits for a standby to replay what its primary had committed when the read
# began (a writer's own wait, `gateway.gate.feed.CATCH_UP_TIMEOUT`, is the same).
REPLAY_TIMEOUT = 3.0
_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)

Conn = psycopg.AsyncConnection[Any]


class PostgresFeed(ChangeFeed):
    def __init__(
        self, url: str, *, poll_interval: float = POLL_INTERVAL, primary: str | None = None
    ) -> None:
        self._url = url
        self._poll_interval = poll_interval
        self._primary = primary
        self._conn: Conn | None = None
        self._aside_conn: Conn | None = None
        self._primary_conn: Conn | None = None
        self._cursor = changes.ChangeCursor(seq=0, in_flight=())
        self._identity = ""
        self.wakeups = 0

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def seq(self) -> int:
        return self._cursor.seq

    async def _following(self) -> Conn:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        await self._drop("_conn")
        conn = await connect(self._url, role="feed")
        try:
            # Listening before reading: a change committed between the two still wakes us.
            # A standby takes no LISTEN: its feed polls alone.
            if self._primary is None:
                await changes.listen(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _own(self, name: str, url: str, role: str) -> Conn:
        conn: Conn | None = getattr(self, name)
        if conn is None or conn.closed:
            conn = await connect(url, role=role)
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
        conn = await self._following()
        try:
            # The server first: a failover between the two breaks this connection.
            server = await identity.read(conn)
            self._cursor = await changes.load(conn, _ALLOWED_VALUES, take_apps, take_chunk)
        except psycopg.Error as exc:
            raise store_error(exc) from exc
        self._identity = server.identity

    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        name = "_aside_conn" if aside else "_conn"
        try:
            if aside:
                conn = await self._own(name, self._url, "feed-aside")
            else:
                conn = await self._following()
            if self._primary is not None:
                await self._replayed(conn)
            if self._identity:
                identity.check(await identity.read(conn), identity=self._identity, seq=self.seq)
            rows, self._cursor = await changes.read_since(conn, self._cursor)
        except psycopg.Error as exc:
            if aside:
                await self._drop(name)
            await self._drop("_primary_conn")
            raise store_error(exc) from exc
        return rows

    async def _replayed(self, conn: Conn) -> None:
        # A read of a standby is as of its primary's position when the read began: so a read
        # begun after a write committed sees it, as on the primary (`gateway.gate.feed`), and a
        # standby lagging past REPLAY_TIMEOUT fails the read, and the gate's age shows it.
        assert self._primary is not None
        primary = await self._own("_primary_conn", self._primary, "feed-primary")
        await standby.replayed(conn, await standby.current_lsn(primary), REPLAY_TIMEOUT)

    async def wait(self) -> None:
        """Until a notification arrives or the poll interval has passed."""
        conn = await self._following()
        try:
            async for _ in conn.notifies(timeout=self._poll_interval, stop_after=1):
                self.wakeups += 1
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def reset(self) -> None:
        await self._drop("_conn")

    async def count_by_status(self) -> dict[str, int]:
        try:
            conn = await self._own("_aside_conn", self._url, "feed-aside")
            return await changes.count_by_status(conn)
        except psycopg.Error as exc:
            await self._drop("_aside_conn")
            raise store_error(exc) from exc

    async def close(self) -> None:
        for name in ("_conn", "_aside_conn", "_primary_conn"):
            await self._drop(name)
