"""The store and the gate through PgBouncer in transaction pooling mode
(tests/support/pgbouncer.py), where consecutive transactions run on different server
connections: LISTEN is accepted and nothing is delivered, a prepared statement or a session SET
lands on another connection. The gate's follower polls its cursor, so changes still reach it
within the 1 s contract; no connection prepares a statement, and a write's lock timeout is its
own transaction's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from domaingate.store.postgres.database import LOCK_TIMEOUT_MS, PostgresDatabase
from gateway.gate.context import Gate
from gateway.metrics import Metrics
from tests.conftest import make_settings, sql
from tests.domaingate.cli.test_cli import prepare
from tests.support.pgbouncer import PgBouncer
from tests.support.wait import await_until

pytestmark = pytest.mark.postgres

LIMIT = 1.0  # the spec's freshness
INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (?, 1, 'web', 'active', 'subdomain', 'cname', 'dg_x', 0, 0)"
)


@pytest.fixture
def bounced(pg_url: str, pgbouncer: PgBouncer) -> str:
    """The test's database, through PgBouncer."""
    prepare(pg_url, "acme")
    sql(
        pg_url, "INSERT INTO apps (name, tenant_id, created_at, updated_at) VALUES ('web', 1, 0, 0)"
    )
    return pgbouncer.url(pg_url)


@pytest.fixture
async def db(bounced: str) -> AsyncIterator[PostgresDatabase]:
    # Through PgBouncer from the start: the migration step too.
    database = await PostgresDatabase.connect(bounced)
    try:
        yield database
    finally:
        await database.close()


async def test_the_gate_follows_through_pgbouncer_within_the_contract(
    db: PostgresDatabase, bounced: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    gate = Gate.of(make_settings(bounced), Metrics())
    async with gate.running():
        took = []
        for n in range(12):
            async with db.write() as conn:
                await conn.execute(INSERT, (f"d{n}.acme.com",))
            committed = time.monotonic()
            name = f"d{n}.acme.com"
            await await_until(lambda: name in gate.allowlist, timeout=LIMIT + 2)  # noqa: B023
            took.append(time.monotonic() - committed)
        # The writer's own wait for its commit to hold at the gate works through it too.
        async with db.write() as conn:
            await conn.execute(INSERT, ("mine.acme.com",))
        assert await gate.follower.caught_up()
        assert "mine.acme.com" in gate.allowlist
        assert await gate.follower.count_by_status() == {"active": 13}
        assert gate.follower.errors == 0
    assert max(took) < LIMIT, took
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_repeated_statements_and_writes_hold_through_pgbouncer(db: PostgresDatabase) -> None:
    # psycopg prepares a statement run five times on a connection, unless told not to: through
    # a pooler, the next run lands where it was never prepared.
    counts = await asyncio.gather(
        *(db.read_number("SELECT count(*) FROM domains WHERE id > ?", (n,)) for n in range(40))
    )
    assert counts == [0] * 40
    for n in range(8):
        async with db.write() as conn:
            await conn.execute(INSERT, (f"w{n}.acme.com",))
            # The lock timeout is the transaction's own (SET LOCAL), wherever it runs.
            cursor = await conn.execute("SHOW lock_timeout")
            row = await cursor.fetchone()
            assert row is not None and row[0] == f"{LOCK_TIMEOUT_MS // 1000}s"
    assert await db.read_number("SELECT count(*) FROM domains") == 8
