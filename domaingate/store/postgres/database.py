"""The PostgreSQL database: a connection pool, migrations, and write transactions.

A write transaction takes its locks before its first statement and keeps them until it commits
(`domaingate.store.scopes`): the fleet lock, shared, then an advisory lock for each scope it
names (a hostname, a tenant, a row), in one order. Writers that name a common scope take turns
across every process on every node (within a process, one of them at a time waits on the server
with a pooled connection: `domaingate.store.postgres.turns`); the others run at once. Every
read-then-write in the store (the claim check before an insert, the quota count, the rate-limit
count, the compare-and-set reads of a batch) names the scopes its reads depend on, so it keeps
the guarantee it was written for, at READ COMMITTED: each statement after the locks sees
everything committed before it by a writer of the same scope. A write that names no scope takes
the fleet lock exclusively: it waits for every other writer and holds them all back, as SQLite's
`BEGIN IMMEDIATE` does, so a write nobody has scoped keeps the guarantee it had. Reads run
concurrently on the pool and never wait for a lock.

Every connection works through a pooler in transaction mode (PgBouncer's `pool_mode =
transaction`), where consecutive transactions may run on different server connections: no
prepared statements (`prepare_threshold=None`: psycopg would prepare a repeated query on one
server connection and run it on another), and no session state (the lock timeout is set with
`SET LOCAL` in each write transaction, not once per connection). Each connection names its role
in `application_name`, so `pg_stat_activity` tells an edge's connections apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from domaingate.store import upgrades
from domaingate.store.abc import WRITE_WAIT_MS, Database, ErrorHook, Reader
from domaingate.store.abc import Connection as StoreConnection
from domaingate.store.abc import Cursor as StoreCursor
from domaingate.store.errors import MigrationError, StoreUnavailable, StoreUnreachable
from domaingate.store.migrations import migrations
from domaingate.store.postgres.adapter import Connection, row_factory, store_error, translated
from domaingate.store.postgres.standby import check_standby_schema, in_recovery
from domaingate.store.postgres.turns import Turns
from domaingate.store.scopes import Scope, keys
from domaingate.targets import PostgresServer

log = logging.getLogger(__name__)

# Advisory lock keys (any two fixed numbers; they only need to be the same in every process).
# The fleet lock keeps its key and its one-number form from when every write took it exclusively:
# an edge of that version, during a rolling upgrade, still waits for this version's writers and
# holds them back. Scopes take the two-number form, a key space of its own.
WRITE_LOCK = 0x646F6D61696E01  # "domain" 01
MIGRATE_LOCK = 0x646F6D61696E02
CONNECT_TIMEOUT = 5.0
# A write waits this long for the write lock (or any row lock) before it gives up, as a SQLite
# write waits out its busy timeout: then the API answers 503 and the client retries.
LOCK_TIMEOUT_MS = WRITE_WAIT_MS
# How long a request waits for a pooled connection before it is answered 503.
POOL_TIMEOUT = 5.0
POOL_SIZE = 8
# Writers of one process that may hold a pooled connection at once (the others wait in the
# process, holding none): the rest of the pool is left to reads.
WRITERS = POOL_SIZE // 2
# The locks of a write, in one statement (one round trip): the fleet lock first, then the scopes
# in the order given (an Append runs its parts in order, a function scan its array in order).
_LOCK_SCOPES = (
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(%s)"
    " UNION ALL SELECT pg_advisory_xact_lock(k.c, k.o)"
    " FROM unnest(%s::int4[], %s::int4[]) AS k (c, o)) AS taken"
)
_LOCK_FLEET = "SELECT pg_advisory_xact_lock(%s)"
# `application_name` of each role's connections (`pg_stat_activity`).
APPLICATION = "domaingate"


def connection_options(url: str, role: str) -> dict[str, Any]:
    """What every connection the product opens is opened with (see the module's docstring). An
    `application_name` the operator put in the URL is theirs to keep: only a URL that names none
    gets the role's."""
    options: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": int(CONNECT_TIMEOUT),
        "prepare_threshold": None,
    }
    try:
        named = "application_name" in conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        named = False  # a malformed URL: connecting says what is wrong with it
    if not named:
        options["application_name"] = f"{APPLICATION}-{role}"
    return options


async def connect(url: str, *, role: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """One autocommit connection for `role` (its `application_name`); StoreUnreachable
    (saying why, naming the server) if none."""
    try:
        return await psycopg.AsyncConnection.connect(url, **connection_options(url, role), **kwargs)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StoreUnreachable(
            f"cannot connect to PostgreSQL at {PostgresServer(url)}: {reason}"
        ) from exc


async def migrate(conn: psycopg.AsyncConnection[Any]) -> int:
    """Apply pending migrations, tracked in `schema_migrations`; returns the schema version.

    Safe from several processes at once: the first to take the advisory lock migrates, the
    others then find nothing left to do.
    """
    known = migrations("postgresql")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(known):
            raise MigrationError(
                f"the database is at schema version {current}, newer than this domaingate "
                f"({len(known)}); upgrade domaingate"
            )
        for version, name, sql in known[current:]:
            refusal = await upgrades.refusal(Connection(conn), version)
            if refusal is not None:
                raise MigrationError(f"cannot upgrade to schema version {version}: {refusal}")
            await conn.execute(sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            current = version
    return current


class PostgresReader(Reader):
    """Reads on the pool: each statement on its own connection, seeing the latest commit."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AsyncIterator[StoreCursor]:
        with translated():
            async with self._pool.connection() as raw:
                cursor = await Connection(raw).execute(sql, parameters)
                try:
                    yield cursor
                finally:
                    await cursor.close()


class PostgresDatabase(Database):
    """The process's pool of connections to one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        pool: AsyncConnectionPool[Any],
        *,
        on_error: ErrorHook | None = None,
        scoped: bool = True,
    ) -> None:
        self.url = url
        self._pool = pool
        self._reader = PostgresReader(pool)
        self._writers = asyncio.Semaphore(WRITERS)
        self._turns = Turns(LOCK_TIMEOUT_MS / 1000)
        self._on_error = on_error
        # False: every write takes the fleet lock exclusively, scopes or not (how writes were
        # before scopes; bench.fleet_writes measures both).
        self._scoped = scoped

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        on_error: ErrorHook | None = None,
        role: str = "store",
        scoped: bool = True,
    ) -> PostgresDatabase:
        """Migrate and open the pool. StoreUnreachable, with the reason, if the server is not
        there: a start-up fails at once with a message rather than retrying in silence. A hot
        standby is never migrated (it is read-only; its primary is): its schema is checked."""
        conn = await connect(url, role="migrate")
        try:
            with translated():
                if await in_recovery(conn):
                    await check_standby_schema(conn, PostgresServer(url))
                else:
                    await migrate(conn)
        finally:
            await conn.close()
        options = connection_options(url, role)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=POOL_TIMEOUT,
            name="domaingate",
            kwargs={**options, "row_factory": row_factory},
        )
        with translated():
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        return cls(url, pool, on_error=on_error, scoped=scoped)

    @property
    def target(self) -> PostgresServer:
        return PostgresServer(self.url)

    @property
    def reader(self) -> PostgresReader:
        return self._reader

    async def close(self) -> None:
        await self._pool.close()

    async def schema_version(self) -> int:
        async with self._reader.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def write(self, *scopes: Scope) -> AsyncIterator[StoreConnection]:
        """A write transaction holding the locks of `scopes` (none: the fleet lock, exclusive):
        commits on success, rolls back on any exception. A deadlock or a lock not granted
        within LOCK_TIMEOUT_MS is StoreBusy, like any other wait for a turn."""
        taken = keys(scopes) if scopes and self._scoped else []
        try:
            # This process's writers of a common key wait for their turn here, holding no
            # pooled connection (`domaingate.store.postgres.turns`).
            async with (
                self._turns.of(taken),
                self._writers,
                self._pool.connection() as raw,
                raw.transaction(),
            ):
                # Per transaction: a session's SET would not follow it through a pooler.
                await raw.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                await self._lock(raw, taken)
                yield Connection(raw)
        except psycopg.Error as exc:
            mapped = store_error(exc)
            self._report(mapped)
            raise mapped from exc
        except Exception as exc:
            self._report(exc)
            raise

    async def _lock(self, raw: psycopg.AsyncConnection[Any], taken: list[tuple[int, int]]) -> None:
        if not taken:
            await raw.execute(_LOCK_FLEET, (WRITE_LOCK,))
            return
        await raw.execute(
            _LOCK_SCOPES, (WRITE_LOCK, [kind for kind, _ in taken], [key for _, key in taken])
        )

    def _report(self, exc: BaseException) -> None:
        if self._on_error is not None and isinstance(exc, StoreUnavailable):
            self._on_error(exc)
