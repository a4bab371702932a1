"""The command line on PostgreSQL: `migrate` from an empty database, several at once, tenants,
and an unreachable server refused at start with a message and a non-zero exit (the short
commands and both daemons)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from domaingate.store.database import migrations
from tests.cli.test_cli import TOKEN, run
from tests.conftest import sql
from tests.knot import free_port
from tests.postgres import Cluster

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_db(pg_cluster: Cluster) -> Iterator[str]:
    url = pg_cluster.database(migrated=False)
    yield url
    pg_cluster.drop(url)


def test_migrate_from_empty_several_processes_at_once(empty_db: str) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: run(empty_db, "migrate"), range(3)))
    version = len(migrations("postgresql"))
    for result in results:
        assert result.code == 0, result.err
        assert f"schema version {version}" in result.out
    applied = sql(empty_db, "SELECT version FROM schema_migrations ORDER BY version")
    assert applied == [(v,) for v in range(1, version + 1)]
    tables = {
        row[0]
        for row in sql(empty_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"tenants", "domains", "domain_events", "webhook_outbox", "leases"} <= tables


def test_both_dialects_have_the_same_migrations() -> None:
    assert [v for v, _, _ in migrations("postgresql")] == [v for v, _, _ in migrations()]


def test_tenant_create_and_list(pg_url: str) -> None:
    created = run(pg_url, "tenant", "create", "acme")
    assert created.code == 0, created.err
    assert TOKEN.fullmatch(created.out)
    listed = run(pg_url, "tenant", "list")
    assert listed.code == 0, listed.err
    assert listed.out.startswith("acme\tactive")


@pytest.mark.parametrize("command", [("migrate",), ("tenant", "list"), ("serve",), ("reconcile",)])
def test_an_unreachable_server_stops_the_start_with_a_message(command: tuple[str, ...]) -> None:
    # Nothing listens on this port; the password must not appear in the message.
    url = f"postgresql://dg:hunter2secret@127.0.0.1:{free_port()}/domaingate"
    env = {
        "DOMAINGATE_API_LISTEN": f"127.0.0.1:{free_port()}",
        "DOMAINGATE_INTERNAL_LISTEN": f"127.0.0.1:{free_port()}",
        "DOMAINGATE_RECONCILER_LISTEN": f"127.0.0.1:{free_port()}",
    }
    result = run(url, *command, env=env)
    assert result.code != 0
    assert "cannot connect to PostgreSQL at postgresql://dg:***@127.0.0.1:" in result.err
    assert "hunter2secret" not in result.err
    assert "Traceback" not in result.err
