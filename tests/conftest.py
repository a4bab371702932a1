"""Shared fixtures for the gateway tests: a real SQLite file on tmp_path, the API app and the
internal (gate) app through pytest-aiohttp's `aiohttp_client`, tenants, and a clock to drive.

Nothing here is autouse: tests/dns and tests/reconciler have their own conftests and fixtures
(theirs win inside their directories), and only take from here what they ask for by name.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from pytest_aiohttp import AiohttpClient

from domaingate.settings import Listen, Settings, load_settings
from domaingate.store import tenants
from domaingate.store.database import Database
from domaingate.store.postgres.adapter import translate
from gateway.app import create_app, create_internal_app
from gateway.keys import ALLOWLIST, DB
from tests.postgres import Cluster, postgres_bin

Client = TestClient[web.Request, web.Application]

T0 = 1_750_000_000.0  # a fixed "now" (2025-06-15T15:06:40Z) for tests that drive the clock
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
PLATFORM_ZONE = "apps.example.net"
EDGE_IPV4 = "192.0.2.10"
EDGE_IPV6 = "2001:db8::10"
# Nothing listens on the discard port of loopback: a resolver that never says anything useful.
UNUSED_RESOLVER = Listen("127.0.0.1", 9)


class FakeClock:
    """A clock the test moves by hand (the API's `now`, cool-downs and rate limits read it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(db: Path | str, **overrides: Any) -> Settings:
    """Test settings: SQLite at `db`, the admin token, edge addresses, and `overrides`."""
    values: dict[str, Any] = {
        "db": db,
        "platform_zone": PLATFORM_ZONE,
        "admin_token": ADMIN_TOKEN,
        "edge_ipv4": (EDGE_IPV4,),
        "edge_ipv6": (EDGE_IPV6,),
        "resolvers": (UNUSED_RESOLVER,),
        "dns_timeout": 1.0,
    }
    values.update(overrides)
    return load_settings(env={}, **values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "domaingate.db"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's own PostgreSQL cluster, started on first use, stopped at the end."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (Debian's postgresql package; scripts/test)")
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test alone."""
    url = pg_cluster.database()
    try:
        yield url
    finally:
        pg_cluster.drop(url)


@pytest.fixture
def db_target(db_path: Path) -> Path | str:
    """What settings.db names for the test: SQLite on tmp_path here; directories whose tests run
    on both backends override it with `both_backends`."""
    return db_path


def both_backends(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """For a `db_target` fixture parametrised over ("sqlite", "postgresql")."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return db_path


@pytest.fixture
def settings(db_target: Path | str) -> Settings:
    return make_settings(db_target)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or the text when the response is not JSON
    headers: CIMultiDictProxy[str]

    @property
    def code(self) -> str | None:
        """The error code of a JSON error body, else None."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return code if isinstance(code, str) else None
        return None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """The API app under test, with its clock, and helpers that speak its protocol."""

    def __init__(self, client: Client, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def db(self) -> Database:
        return self.app[DB]

    @property
    def db_path(self) -> Path:
        """The SQLite file (for tests that run on SQLite only)."""
        return self.db.path

    @property
    def db_target(self) -> Path | str:
        """The database, whichever backend: what `sql()` and `set_status()` take."""
        return self.db.target

    async def tenant(self, name: str) -> str:
        """Create a tenant in the app's database; returns its API token."""
        _, token = await tenants.create(self.db, name, self.clock)
        return token

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        sent: dict[str, str] = dict(bearer(token)) if token is not None else {}
        sent.update(headers or {})
        kwargs: dict[str, Any] = {"headers": sent}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        if params is not None:
            kwargs["params"] = params
        async with self.client.request(method, path, **kwargs) as response:
            raw = await response.read()
            body: Any = raw.decode("utf-8", "replace")
            if response.content_type == "application/json":
                body = json.loads(raw)
            return Reply(response.status, body, response.headers)

    async def post_domain(self, token: str, domain: str, app: str = "shop") -> Reply:
        """An attach attempt, whatever its answer."""
        return await self.call(
            "POST", "/api/v1/domains", token=token, json_body={"domain": domain, "app": app}
        )

    async def attach(self, token: str, domain: str, app: str = "shop") -> dict[str, Any]:
        reply = await self.post_domain(token, domain, app=app)
        assert reply.status == 201, reply
        assert isinstance(reply.body, dict)
        return reply.body


class ApiFactory(Protocol):
    def __call__(self, **overrides: Any) -> Awaitable[Api]: ...


@pytest.fixture
def api_factory(
    aiohttp_client: AiohttpClient, db_target: Path | str, clock: FakeClock
) -> ApiFactory:
    """`await api_factory(**setting_overrides)`: a started API app on the test's database."""

    async def make(**overrides: Any) -> Api:
        settings = make_settings(db_target, **overrides)
        client: Client = await aiohttp_client(create_app(settings, clock=clock))
        return Api(client, clock)

    return make


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


@pytest.fixture
async def internal(aiohttp_client: AiohttpClient, api: Api) -> Client:
    """The internal listener's app (gate, route, health, metrics), on the API app's resources."""
    client: Client = await aiohttp_client(create_internal_app(api.app))
    return client


def set_status(db: Path | str, hostname: str, status: str) -> None:
    """Change a live domain's status through a second, independent connection (as the
    reconciler process would); the schema's triggers bump its change sequence."""
    changed = sql(
        db,
        "UPDATE domains SET status = ? WHERE hostname = ? AND status != 'removed' RETURNING id",
        (status, hostname),
    )
    assert len(changed) == 1, f"no live domain {hostname}"


def sql(db: Path | str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (`?` placeholders) on its own connection to `db`, a SQLite file or a
    PostgreSQL URL; returns the rows (committed)."""
    if isinstance(db, str):
        with psycopg.connect(db, autocommit=True) as pg:
            cursor = pg.execute(translate(statement)[0].encode(), params)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    conn = sqlite3.connect(db, timeout=5)
    try:
        with conn:
            return list(conn.execute(statement, params))
    finally:
        conn.close()


def sql_rows(db: Path | str, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """`sql()`, each row as a dict of its columns."""
    if isinstance(db, str):
        with psycopg.connect(db, autocommit=True, row_factory=dict_row) as pg:
            return pg.execute(translate(statement)[0].encode(), params).fetchall()
    conn = sqlite3.connect(db, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            return [dict(row) for row in conn.execute(statement, params)]
    finally:
        conn.close()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.01
) -> float:
    """Poll `predicate` until it holds; returns the seconds it took. Fails after `timeout`."""
    started = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def gate_synced(api: Api, *, timeout: float = 1.0) -> float:
    """Wait until the gate's watcher has read every committed change to `domains` (its sequence
    high-water mark has reached the table's); returns the seconds it took."""
    allowlist = api.app[ALLOWLIST]
    target = int(sql(api.db_target, "SELECT coalesce(max(seq), 0) FROM domains")[0][0])

    async def caught_up() -> bool:
        return allowlist.last_seq >= target

    return await wait_until(caught_up, timeout=timeout)


async def raw_http(client: Client, request: bytes) -> tuple[int, bytes]:
    """Send `request` as raw bytes (exactly as given, no client-side quoting) to the client's
    server; returns the status and the whole response."""
    server = client.server
    assert server.host is not None and server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


async def raw_get(client: Client, target: bytes, headers: bytes = b"") -> int:
    """GET `target` (path and query, sent byte for byte); returns the status."""
    status, _ = await raw_http(
        client,
        b"GET " + target + b" HTTP/1.1\r\nHost: gate\r\n" + headers + b"Connection: close\r\n\r\n",
    )
    return status


def sample(exposition: str, name: str, **labels: str) -> float:
    """One sample's value in a Prometheus text exposition (`name` with its `_total` suffix, if
    any); fails the test when no sample has that name and exactly those labels."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    pytest.fail(f"no sample {name}{labels} in:\n{exposition}")
