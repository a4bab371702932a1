"""The `domaingate` command, run as `python -m domaingate` in a subprocess on a tmp database."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from domaingate.store import tenants
from domaingate.store.backends import open_database
from domaingate.store.migrations import migrations
from gateway.app import create_app
from tests.conftest import FakeClock, bearer, make_settings, target
from tests.support.domaingate import clean_environ, run_domaingate
from tests.support.knot import Knot

# Every test runs the command as a process.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
TOKEN = re.compile(r"dgt_[0-9a-f]{64}\n")


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def run(db: Path | str, *args: str, env: Mapping[str, str] | None = None) -> Run:
    environment = clean_environ()
    environment["DOMAINGATE_DB"] = str(db)
    environment.update(env or {})
    done = run_domaingate(environment, ROOT, *args, timeout=30)
    return Run(done.returncode, done.stdout, done.stderr)


def run_all(db: Path, *calls: tuple[str, ...], env: Mapping[str, str] | None = None) -> list[Run]:
    """Independent commands at once (each start costs ~0.5 s of imports)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run(db, *args, env=env), calls))


def prepare(db: Path | str, *names: str) -> None:
    """Create the database and tenants `names` in this process (faster than the CLI)."""

    async def create() -> None:
        async with await open_database(target(db)) as database:
            for name in names:
                await tenants.create(database, name, time.time)

    asyncio.run(create())


def query(db: Path, statement: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(statement))
    finally:
        conn.close()


def register_apps(db: Path, tenant: str, *apps: str) -> None:
    """Register `apps` for `tenant` as the platform would, straight in the database."""
    now = time.time()
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO apps (name, tenant_id, created_at, updated_at)"
                " SELECT ?, id, ?, ? FROM tenants WHERE name = ?",
                [(app, now, now, tenant) for app in apps],
            )
    finally:
        conn.close()


def attach_rows(db: Path, *rows: tuple[str, str, str, str]) -> None:
    """Insert domains (hostname, tenant, app, status) as the store would hold them."""
    now = time.time()
    conn = sqlite3.connect(db)
    try:
        with conn:
            for hostname, tenant, app, status in rows:
                conn.execute(
                    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method,"
                    " txt_token, created_at, updated_at) SELECT ?, id, ?, ?, 'subdomain',"
                    " 'cname', ?, ?, ? FROM tenants WHERE name = ?",
                    (hostname, app, status, "dg_" + "0" * 64, now, now, tenant),
                )
    finally:
        conn.close()


def test_migrate_creates_the_schema(db: Path) -> None:
    result = run(db, "migrate")
    assert result.code == 0, result.err
    assert f"schema version {len(migrations())}" in result.out
    assert query(db, "PRAGMA user_version") == [(len(migrations()),)]
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "domains", "domain_events"} <= tables


async def test_tenants_create_list_revoke(db: Path, aiohttp_client: AiohttpClient) -> None:
    created = run(db, "tenant", "create", "acme")
    assert created.code == 0, created.err
    assert TOKEN.fullmatch(created.out), created.out  # the token alone, one line
    token = created.out.strip()

    # The printed token works against the API on the same database.
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(make_settings(db), clock=FakeClock())
    )
    async with client.get("/api/v1/domains", headers=bearer(token)) as response:
        assert response.status == 200

    duplicate, globex = run_all(db, ("tenant", "create", "acme"), ("tenant", "create", "globex"))
    assert duplicate.code == 1
    assert duplicate.out == ""
    assert "acme" in duplicate.err
    assert globex.code == 0

    listed = run(db, "tenant", "list")
    assert listed.code == 0
    lines = listed.out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["acme", "active"], ["globex", "active"]]
    assert token not in listed.out

    revoked = run(db, "tenant", "revoke", "acme")
    assert revoked.code == 0
    assert "acme" in revoked.out
    listed, unknown = run_all(db, ("tenant", "list"), ("tenant", "revoke", "nobody"))
    assert listed.out.splitlines()[0].split("\t")[:2] == ["acme", "revoked"]
    assert unknown.code == 1
    assert "nobody" in unknown.err
    async with client.get("/api/v1/domains", headers=bearer(token)) as response:
        assert response.status == 401


def test_domains_list_show_remove(db: Path) -> None:
    prepare(db, "acme", "globex")
    attach_rows(
        db,
        ("shop.acme.com", "acme", "shop", "verified"),
        ("blog.acme.com", "acme", "blog", "pending"),
        ("shop.globex.com", "globex", "shop", "active"),
    )
    # Edge A's reconciler reported a certificate for shop.acme.com from its storage.
    now, conn = time.time(), sqlite3.connect(db)
    for statement in (
        f"INSERT INTO cert_storages (id, scanned_at, scanned_by) VALUES ('s1', {now}, 'edge-a')",
        f"INSERT INTO edges (name, storage, seen_at) VALUES ('edge-a', 's1', {now})",
        "INSERT INTO edge_certificates (storage, hostname, issuer, issuer_key, not_before,"
        f" not_after, seen_at) VALUES ('s1', 'shop.acme.com', 'R11', 'le', {now - 1}, {now + 1e6},"
        f" {now})",
    ):
        with conn:
            conn.execute(statement)
    conn.close()
    listed, by_tenant, by_status, shown, missing = run_all(
        db,
        ("domains", "list"),
        ("domains", "list", "--tenant", "globex", "--app", "shop"),
        ("domains", "list", "--status", "pending"),
        ("domains", "show", "SHOP.acme.com."),
        ("domains", "show", "nothere.acme.com"),
    )
    assert listed.code == 0, listed.err
    assert [line.split("\t")[:4] for line in listed.out.splitlines()] == [
        ["shop.acme.com", "verified", "acme", "shop"],
        ["blog.acme.com", "pending", "acme", "blog"],
        ["shop.globex.com", "active", "globex", "shop"],
    ]
    assert [line.split("\t")[0] for line in by_tenant.out.splitlines()] == ["shop.globex.com"]
    assert [line.split("\t")[0] for line in by_status.out.splitlines()] == ["blog.acme.com"]

    assert shown.code == 0, shown.err
    body = json.loads(shown.out)
    assert body["domain"] == "shop.acme.com"
    assert body["tenant"] == "acme"
    assert body["status"] == "verified"
    assert body["instructions"]["records"][0]["type"] == "CNAME"
    assert body["cert_edges"] == ["edge-a"]  # the operator's view: which edges hold it

    assert missing.code == 1
    assert "nothere.acme.com" in missing.err

    removed = run(db, "domains", "remove", "shop.acme.com")
    assert removed.code == 0, removed.err
    assert "shop.acme.com" in removed.out
    assert query(db, "SELECT status FROM domains WHERE hostname = 'shop.acme.com'") == [
        ("removed",)
    ]
    events = query(
        db,
        "SELECT e.type FROM domain_events e JOIN domains d ON d.id = e.domain_id"
        " WHERE d.hostname = 'shop.acme.com'",
    )
    assert events == [("domain.removed",)]
    listed = run(db, "domains", "list")
    assert [line.split("\t")[0] for line in listed.out.splitlines()] == [
        "blog.acme.com",
        "shop.globex.com",
    ]


BAD_SETTINGS = [
    ({"DOMAINGATE_EXPIRING_DAYS": "-1"}, "DOMAINGATE_EXPIRING_DAYS"),
    ({"DOMAINGATE_RESOLVERS": ""}, "DOMAINGATE_RESOLVERS"),
    ({"DOMAINGATE_FOO": "1"}, "DOMAINGATE_FOO"),
]


def test_a_bad_setting_exits_2_naming_the_key(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("api_listen = 8080\n")
    with ThreadPoolExecutor(max_workers=4) as pool:
        from_env = list(pool.map(lambda case: run(db, "migrate", env=case[0]), BAD_SETTINGS))
        from_file = list(
            pool.map(
                lambda args: run(db, *args),
                [("tenant", "list", "--config", str(config))],
            )
        )
    for result, (_, key) in zip(from_env, BAD_SETTINGS, strict=True):
        assert result.code == 2, key
        assert key in result.err
        assert "Traceback" not in result.err
    for result in from_file:
        assert result.code == 2
        assert "DOMAINGATE_API_LISTEN" in result.err
        assert str(config) in result.err
        assert "Traceback" not in result.err
    assert not db.exists()  # stopped before touching anything


@pytest.fixture(scope="module")
def knot() -> Iterator[Knot]:
    with Knot(
        {
            "apps.test": "web A 192.0.2.10\n",
            "acme.test": "good CNAME web.apps.test.\nwrong CNAME elsewhere.acme.test.\n",
        }
    ) as server:
        yield server


@pytest.mark.knot
def test_check_against_knot_prints_findings_and_exits_0_or_1(db: Path, knot: Knot) -> None:
    env = {
        "DOMAINGATE_RESOLVERS": f"{knot.listen.host}:{knot.listen.port}",
        "DOMAINGATE_PLATFORM_ZONE": "apps.test",
    }
    good, wrong, unattached = run_all(
        db,
        ("check", "good.acme.test", "--app", "web"),
        ("check", "Wrong.Acme.Test.", "--app", "web"),
        ("check", "good.acme.test"),
        env=env,
    )
    assert good.code == 0, good.out + good.err
    assert re.search(r"ok\s+cname: good\.acme\.test is a CNAME to web\.apps\.test", good.out)
    assert "result: DNS is right" in good.out

    assert wrong.code == 1
    assert "FAIL cname [cname_wrong_target]" in wrong.out
    assert "web.apps.test" in wrong.out  # what to fix
    assert "result: fix the records marked FAIL" in wrong.out

    assert unattached.code == 1
    assert "--app" in unattached.err


@pytest.mark.knot
def test_domains_verify_against_knot(db: Path, knot: Knot) -> None:
    env = {
        "DOMAINGATE_RESOLVERS": f"{knot.listen.host}:{knot.listen.port}",
        "DOMAINGATE_PLATFORM_ZONE": "apps.test",
    }
    prepare(db, "acme")
    attach_rows(
        db,
        ("good.acme.test", "acme", "web", "pending"),
        ("wrong.acme.test", "acme", "web", "pending"),
    )
    good, wrong = run_all(
        db,
        ("domains", "verify", "good.acme.test"),
        ("domains", "verify", "wrong.acme.test"),
        env=env,
    )
    assert good.code == 0, good.out + good.err
    assert "status: verified" in good.out
    assert wrong.code == 1
    assert "[cname_wrong_target]" in wrong.out
    assert "status: pending" in wrong.out
    assert query(db, "SELECT hostname, status FROM domains ORDER BY id") == [
        ("good.acme.test", "verified"),
        ("wrong.acme.test", "pending"),
    ]
