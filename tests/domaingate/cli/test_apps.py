"""`domaingate apps add|list|remove`, and the upgrade that gives each existing app to its tenant."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from domaingate.store.migrations import migrations

from .test_cli import attach_rows, prepare, query, run, run_all

# The command line as processes, on a real database.
pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def test_apps_add_list_remove(db: Path) -> None:
    prepare(db, "acme", "globex")
    added = run_all(
        db,
        ("apps", "add", "acme", "shop"),
        ("apps", "add", "acme", "blog", "--upstream", "blog.internal:8080"),
        ("apps", "add", "globex", "store"),
    )
    assert [result.code for result in added] == [0, 0, 0], [r.err for r in added]
    listed = run(db, "apps", "list")
    assert listed.out.splitlines() == [
        "blog\tacme\tblog.internal:8080",
        "shop\tacme\t-",
        "store\tglobex\t-",
    ]
    assert run(db, "apps", "list", "--tenant", "globex").out == "store\tglobex\t-\n"

    # An app belongs to one tenant: another cannot take it, its owner can change its upstream.
    taken = run(db, "apps", "add", "globex", "shop")
    assert taken.code == 1
    assert "belongs to another tenant" in taken.err
    changed = run(db, "apps", "add", "acme", "shop", "--upstream", "[::1]:9000")
    assert changed.code == 0, changed.err
    assert query(db, "SELECT upstream FROM apps WHERE name = 'shop'") == [("[::1]:9000",)]

    # Refused while a live domain uses it; removed once none does.
    attach_rows(db, ("shop.acme.com", "acme", "shop", "pending"))
    busy = run(db, "apps", "remove", "acme", "shop")
    assert busy.code == 1
    assert "detach them first" in busy.err
    sqlite3.connect(db).execute("UPDATE domains SET status = 'removed'").connection.commit()
    assert run(db, "apps", "remove", "acme", "shop").code == 0
    assert run(db, "apps", "remove", "acme", "shop").code == 1  # gone
    assert run(db, "apps", "remove", "globex", "blog").code == 1  # not globex's


@pytest.mark.parametrize(
    "args",
    [
        ("apps", "add", "acme", "Shop"),
        ("apps", "add", "acme", "shop.web"),
        ("apps", "add", "acme", "shop", "--upstream", "http://shop:80"),
        ("apps", "add", "acme", "shop", "--upstream", "shop"),
        ("apps", "add", "acme", "shop", "--upstream", "shop:0"),
        ("apps", "add", "acme", "shop", "--upstream", "shop:65536"),
        ("apps", "add", "acme", "shop", "--upstream", "shop:80/path"),
        ("apps", "add", "acme", "shop", "--upstream", "[::1:80"),
        ("apps", "add", "nobody", "shop"),
    ],
)
def test_bad_apps_are_refused(db: Path, args: tuple[str, ...]) -> None:
    prepare(db, "acme")
    result = run(db, *args)
    assert result.code == 1, result
    assert result.err.startswith("domaingate: ")
    assert query(db, "SELECT count(*) FROM apps") == [(0,)]


def at_version_2(db: Path) -> sqlite3.Connection:
    """A database as domaingate before apps had owners left it (schema version 2)."""
    conn = sqlite3.connect(db)
    for version, _name, script in migrations()[:2]:
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    now = time.time()
    for tenant_id, name in ((1, "acme"), (2, "globex"), (3, "initech")):
        conn.execute(
            "INSERT INTO tenants (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (tenant_id, name, bytes([tenant_id]) * 32, now),
        )
    return conn


def insert(conn: sqlite3.Connection, *rows: tuple[str, int, str, str]) -> None:
    now = time.time()
    conn.executemany(
        "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, 'subdomain', 'cname', 'dg_x', ?, ?)",
        [(*row, now, now) for row in rows],
    )
    conn.commit()
    conn.close()


def test_the_upgrade_gives_each_app_to_its_tenant(db: Path) -> None:
    insert(
        at_version_2(db),
        ("a.acme.com", 1, "shop", "active"),
        ("b.acme.com", 1, "shop", "pending"),
        ("c.globex.com", 2, "store", "verified"),
        # A removed domain's app is nobody's now: another tenant may have it.
        ("d.initech.com", 3, "shop", "removed"),
    )
    result = run(db, "migrate")
    assert result.code == 0, result.err
    assert query(db, "PRAGMA user_version") == [(len(migrations()),)]
    assert query(
        db, "SELECT a.name, t.name FROM apps a JOIN tenants t ON t.id = a.tenant_id ORDER BY a.name"
    ) == [("shop", "acme"), ("store", "globex")]


def test_the_upgrade_refuses_an_app_two_tenants_used(db: Path) -> None:
    insert(
        at_version_2(db),
        ("a.acme.com", 1, "shop", "active"),
        ("b.globex.com", 2, "shop", "pending"),
        ("c.initech.com", 3, "web", "failed"),
        ("d.acme.com", 1, "web", "verified"),
    )
    result = run(db, "migrate")
    assert result.code == 2
    assert result.err.startswith("domaingate: cannot upgrade to schema version 3: ")
    assert "Traceback" not in result.err
    assert "app 'shop' is used by tenants acme, globex" in result.err
    assert "app 'web' is used by tenants acme, initech" in result.err
    # Nothing changed: still version 2, no apps table.
    assert query(db, "PRAGMA user_version") == [(2,)]
    assert query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'apps'") == [(0,)]
