"""DB_READ: the gate loads and follows from a hot standby (a real one, streaming from the test
cluster: `Cluster.standby()`), while writes go to DB. A process started on a standby never
migrates it, and says so when its schema is behind; a writer's wait for its commit to hold at
the gate waits for the standby to replay it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from domaingate.store.errors import MigrationError
from domaingate.store.postgres.database import PostgresDatabase
from domaingate.targets import PostgresServer
from gateway.gate.context import Gate
from gateway.metrics import Metrics
from tests.conftest import make_settings, sql
from tests.domaingate.cli.test_cli import prepare
from tests.support.postgres import Cluster
from tests.support.wait import await_until, wait_until

pytestmark = pytest.mark.postgres

INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (?, 1, 'web', 'active', 'subdomain', 'cname', 'dg_x', 0, 0)"
)


@pytest.fixture(scope="module")
def standby(pg_cluster: Cluster) -> Iterator[Cluster]:
    replica = pg_cluster.standby()
    try:
        yield replica
    finally:
        replica.stop()


def on_standby(standby: Cluster, primary_url: str) -> str:
    """The URL of `primary_url`'s database on the standby, once the standby has it."""
    url = standby.url(primary_url.rsplit("/", 1)[1])

    def there() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1 FROM domains LIMIT 1")
        except psycopg.Error:
            return False
        return True

    wait_until(there, timeout=20, what="the standby to have the database")
    return url


def replay(standby_url: str, action: str) -> None:
    """Pause the standby's replay (once it has paused), or resume it."""
    with psycopg.connect(standby_url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{action}()".encode())
        if action == "pause":

            def paused() -> bool:
                row = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
                return row is not None and row[0] == "paused"

            wait_until(paused, timeout=10, interval=0.01, what="the standby to pause")


async def test_a_standby_is_opened_without_migrating(pg_url: str, standby: Cluster) -> None:
    url = on_standby(standby, pg_url)
    db = await PostgresDatabase.connect(url)
    try:
        assert await db.schema_version() == await db.read_number(
            "SELECT max(version) FROM schema_migrations"
        )
    finally:
        await db.close()


async def test_a_standby_behind_is_refused_with_what_to_do(
    pg_cluster: Cluster, standby: Cluster
) -> None:
    empty = pg_cluster.database(migrated=False)
    try:
        url = standby.url(empty.rsplit("/", 1)[1])

        def there() -> bool:
            try:
                psycopg.connect(url, connect_timeout=2).close()
            except psycopg.Error:
                return False
            return True

        wait_until(there, timeout=20, what="the standby to have the database")
        with pytest.raises(MigrationError, match="hot standby at schema version 0, behind") as err:
            await PostgresDatabase.connect(url)
        assert "domaingate migrate" in str(err.value) and "primary" in str(err.value)
        # Nothing was written: the primary's copy is as empty as it was.
        assert sql(empty, "SELECT to_regclass('schema_migrations')::text") == [(None,)]
    finally:
        pg_cluster.drop(empty)


@pytest.fixture
def primary(pg_url: str) -> str:
    prepare(pg_url, "acme")
    sql(
        pg_url, "INSERT INTO apps (name, tenant_id, created_at, updated_at) VALUES ('web', 1, 0, 0)"
    )
    sql(pg_url, INSERT, ("old.acme.com",))
    return pg_url


async def test_the_gate_follows_the_standby_and_a_write_waits_for_its_replay(
    primary: str, standby: Cluster
) -> None:
    pg_url = primary
    read_url = on_standby(standby, pg_url)
    wait_until(
        lambda: sql(read_url, "SELECT count(*) FROM domains") == [(1,)],
        timeout=10,
        what="the standby to replay the first domain",
    )
    settings = make_settings(pg_url, db_read=PostgresServer(read_url))
    gate = Gate.of(settings, Metrics())
    async with gate.running():
        assert "old.acme.com" in gate.allowlist
        # Followed from the standby by polling (a standby takes no LISTEN).
        sql(pg_url, INSERT, ("polled.acme.com",))
        await await_until(lambda: "polled.acme.com" in gate.allowlist, timeout=3)
        replay(read_url, "pause")
        try:
            sql(pg_url, INSERT, ("mine.acme.com",))
            waiting = asyncio.ensure_future(gate.follower.caught_up())
            # It asks the primary where it is, then waits for the standby to get there.
            await await_until(lambda: reading_primary(pg_url), timeout=2)
            assert not waiting.done()
            assert "mine.acme.com" not in gate.allowlist
        finally:
            replay(read_url, "resume")
        assert await waiting
        assert "mine.acme.com" in gate.allowlist
        assert gate.follower.errors == 0
        # A standby behind for longer than a writer waits: the write is not said to hold, the
        # follower's reads fail (the gate's age shows it) and it answers from what it has.
        replay(read_url, "pause")
        try:
            sql(pg_url, INSERT, ("late.acme.com",))
            assert not await gate.follower.caught_up()
            await await_until(lambda: gate.follower.errors >= 1, timeout=10)
            assert "mine.acme.com" in gate.allowlist
            assert "late.acme.com" not in gate.allowlist
        finally:
            replay(read_url, "resume")
        await await_until(lambda: "late.acme.com" in gate.allowlist, timeout=5)


def reading_primary(primary: str) -> bool:
    rows = sql(
        primary,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'domaingate-feed-primary'"
        " AND datname = current_database()",
    )
    return int(rows[0][0]) >= 1
