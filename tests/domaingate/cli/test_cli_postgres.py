"""The command line on PostgreSQL: `migrate` from an empty database, several at once, the
upgrade to schema 3 (apps given to their tenants, or refused naming the tenants sharing one),
tenants, and an unreachable server refused at start with a message and a non-zero exit (the
short commands and the reconciler). The gateway starts anyway, with the same message: its gate
serves from its snapshot, or denies, and its API answers 503 until the server is reachable."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from domaingate.store.migrations import migrations
from tests.conftest import sql
from tests.domaingate.cli.test_cli import TOKEN, run
from tests.support.domaingate import Domaingate
from tests.support.net import free_port
from tests.support.postgres import Cluster
from tests.support.wait import wait_until

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


def at_version_2(url: str, *rows: tuple[str, int, str, str]) -> None:
    """Migrations 001 and 002 applied (as a release before apps left the database), three
    tenants, and the domains `rows` (hostname, tenant id, app, status)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in migrations("postgresql")[:2]:
            conn.execute(text.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
        for tenant_id, name in ((1, "acme"), (2, "globex"), (3, "initech")):
            conn.execute(
                "INSERT INTO tenants (id, name, token_hash, created_at) VALUES (%s, %s, %s, 0)",
                (tenant_id, name, bytes([tenant_id]) * 32),
            )
        for row in rows:
            conn.execute(
                "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, 'subdomain', 'cname', 'dg_x',"
                " 0, 0)",
                row,
            )


def test_the_upgrade_gives_each_app_to_its_tenant(empty_db: str) -> None:
    at_version_2(
        empty_db,
        ("a.acme.com", 1, "shop", "active"),
        ("b.acme.com", 1, "shop", "pending"),
        ("c.globex.com", 2, "store", "verified"),
        ("d.initech.com", 3, "shop", "removed"),
    )
    result = run(empty_db, "migrate")
    assert result.code == 0, result.err
    assert f"schema version {len(migrations('postgresql'))}" in result.out
    assert sql(
        empty_db,
        "SELECT a.name, t.name FROM apps a JOIN tenants t ON t.id = a.tenant_id ORDER BY a.name",
    ) == [("shop", "acme"), ("store", "globex")]


def test_the_upgrade_refuses_an_app_two_tenants_used(empty_db: str) -> None:
    at_version_2(
        empty_db,
        ("a.acme.com", 1, "shop", "active"),
        ("b.globex.com", 2, "shop", "pending"),
        ("c.initech.com", 3, "web", "failed"),
        ("d.acme.com", 1, "web", "verified"),
    )
    result = run(empty_db, "migrate")
    assert result.code == 2
    assert result.err.startswith("domaingate: cannot upgrade to schema version 3: ")
    assert "app 'shop' is used by tenants acme, globex" in result.err
    assert "app 'web' is used by tenants acme, initech" in result.err
    assert "Traceback" not in result.err
    # Nothing changed: still version 2, no apps table.
    assert sql(empty_db, "SELECT max(version) FROM schema_migrations") == [(2,)]
    assert sql(empty_db, "SELECT to_regclass('apps') IS NULL") == [(True,)]


def test_tenant_create_and_list(pg_url: str) -> None:
    created = run(pg_url, "tenant", "create", "acme")
    assert created.code == 0, created.err
    assert TOKEN.fullmatch(created.out)
    listed = run(pg_url, "tenant", "list")
    assert listed.code == 0, listed.err
    assert listed.out.startswith("acme\tactive")


@pytest.mark.parametrize("command", [("migrate",), ("tenant", "list"), ("reconcile",)])
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


def test_the_gateway_starts_on_an_unreachable_server_and_answers_503(tmp_path: Path) -> None:
    url = f"postgresql://dg:hunter2secret@127.0.0.1:{free_port()}/domaingate"
    dg = Domaingate(tmp_path / "dg", {"DB": url})
    dg.gateway.start()

    def answers() -> bool:
        try:
            return dg.api("GET", "/domains", token="dg_anything").status == 503
        except OSError:  # not listening yet
            return False

    try:
        wait_until(
            answers,
            timeout=20,
            what="the gateway's API to answer",
            alive=dg.gateway.check_alive,
        )
        refused = dg.api("GET", "/domains", token="dg_anything")
        assert refused.body["error"]["code"] == "STORE_UNAVAILABLE"
        # No snapshot: nothing is allowed, and the gate is not ready.
        assert (dg.readyz(), dg.ask("shop.acme.com")) == (503, 403)
        log = dg.gateway.log_text()
        assert "cannot connect to PostgreSQL at postgresql://dg:***@127.0.0.1:" in log
        assert "no gate snapshot" in log or "gate snapshot" in log
        assert "hunter2secret" not in log
        assert "Traceback" not in log
    finally:
        dg.gateway.stop()
