"""Shared fixtures: a real SQLite file on tmp_path (or, where a directory runs its tests on both
backends, a PostgreSQL database of the session's cluster: `db_target`), the one `settings` of the
domaingate under test, the API app and the internal (gate) listener through pytest-aiohttp's
`aiohttp_client`, tenants, and a clock to drive. The processes (knot, the daemons, PostgreSQL's
cluster) come from tests/support/fixtures.py, loaded here as a plugin.

Nothing here is autouse. The `knot` and `e2e` markers imply `slow` (see
`pytest_collection_modifyitems`), so `scripts/check --fast` leaves those tests out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from pytest_aiohttp import AiohttpClient
from yarl import URL

from domaingate.models import Tenant
from domaingate.settings import Listen, Settings, load_settings
from domaingate.settings_values import parse_db
from domaingate.store import apps, tenants
from domaingate.store.abc import Database
from domaingate.store.postgres.adapter import translate
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile
from gateway.app import create_app, create_internal_listener
from gateway.keys import ALLOWLIST, DB
from tests.support.net import HOST, free_port
from tests.support.wait import await_until

pytest_plugins = ["tests.support.fixtures"]

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


# Where a test's database is: what DOMAINGATE_DB says (a SQLite file, a PostgreSQL URL), or the
# typed target settings.db holds.
Where = Path | str | DatabaseTarget


def target(where: Where) -> DatabaseTarget:
    """The typed target of `where`, as settings parse DB."""
    return parse_db(where)


def location(where: Where) -> Path | str:
    """What DOMAINGATE_DB says for `where`."""
    return where.location if isinstance(where, SqliteFile | PostgresServer) else where


def make_settings(db: Where, **overrides: Any) -> Settings:
    """Test settings: SQLite at `db`, the admin token, edge addresses, and `overrides`."""
    values: dict[str, Any] = {
        "db": target(db),
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
def storage(tmp_path: Path) -> Path:
    """Caddy's storage root, with its (empty) certificates directory."""
    root = tmp_path / "caddy"
    (root / "certificates").mkdir(parents=True)
    return root


@pytest.fixture
def settings(db_target: Path | str, storage: Path) -> Settings:
    """The Settings of the domaingate under test: `make_settings` on `db_target`, Caddy's storage
    at `storage`, and the reconciler's listener on a free port (a daemon started on them must not
    collide with another on the default port)."""
    return make_settings(
        db_target, caddy_storage=storage, reconciler_listen=Listen(HOST, free_port())
    )


def pytest_configure(config: pytest.Config) -> None:
    """A state directory of the run's own: a gate on PostgreSQL writes its snapshot there by
    default (`Settings.gate_snapshot_path`), never into the working directory, the checkout."""
    os.environ["STATE_DIRECTORY"] = tempfile.mkdtemp(prefix="domaingate-state-")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run knot, PostgreSQL or the whole stack are slow by definition."""
    for item in items:
        if item.get_closest_marker("knot") or item.get_closest_marker("e2e") or _postgres(item):
            item.add_marker(pytest.mark.slow)


def _postgres(item: pytest.Item) -> bool:
    """Whether the test runs against the session's PostgreSQL cluster (a real server)."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgresql" in callspec.params.values():
        return True
    names = getattr(item, "fixturenames", ())
    return "pg_url" in names or "pg_cluster" in names


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
        self.tenants: dict[str, Tenant] = {}  # by API token

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def db(self) -> Database:
        return self.app[DB]

    @property
    def db_path(self) -> Path:
        """The SQLite file (for tests that run on SQLite only)."""
        target = self.db.target
        assert isinstance(target, SqliteFile), "a SQLite-only test ran on PostgreSQL"
        return target.path

    @property
    def db_target(self) -> Path | str:
        """The database, whichever backend: what DOMAINGATE_DB says, and what `sql()` and
        `set_status()` take."""
        return self.db.target.location

    async def tenant(self, name: str) -> str:
        """Create a tenant in the app's database; returns its API token."""
        tenant, token = await tenants.create(self.db, name, self.clock)
        self.tenants[token] = tenant
        return token

    async def register(self, token: str, app: str, upstream: str | None = None) -> None:
        """Register `app` for the tenant holding `token`, as the platform does (the CLI)."""
        await apps.put(self.db, self.tenants[token], app, upstream, self.clock)

    async def register_if_free(self, token: str, app: str) -> None:
        """What the platform does before a tenant attaches with an app of its own: register it,
        unless it is taken (then the attach is the tenant's attempt on another's app)."""
        if token in self.tenants and await apps.get(self.db, app) is None:
            await self.register(token, app)

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

    async def default_app(self, token: str) -> str:
        """`shop`, or `shop-{tenant}` once another tenant holds `shop` (app names are unique)."""
        owner = await apps.get(self.db, "shop")
        tenant = self.tenants.get(token)
        if owner is None or tenant is None or owner.tenant_id == tenant.id:
            return "shop"
        return f"shop-{tenant.name}"

    async def post_domain(
        self, token: str, domain: str, app: str | None = None, *, register: bool = True
    ) -> Reply:
        """An attach attempt, whatever its answer; `register`: the app is registered for the
        tenant first if nobody holds it. Without `app`, the tenant's default app."""
        if app is None:
            app = await self.default_app(token)
        if register:
            await self.register_if_free(token, app)
        return await self.call(
            "POST", "/api/v1/domains", token=token, json_body={"domain": domain, "app": app}
        )

    async def attach(self, token: str, domain: str, app: str | None = None) -> dict[str, Any]:
        reply = await self.post_domain(token, domain, app=app)
        assert reply.status == 201, reply
        assert isinstance(reply.body, dict)
        return reply.body


class ApiFactory(Protocol):
    def __call__(self, **overrides: Any) -> Awaitable[Api]: ...


@pytest.fixture
def api_factory(
    aiohttp_client: AiohttpClient, db_target: Path | str, clock: FakeClock, tmp_path: Path
) -> ApiFactory:
    """`await api_factory(**setting_overrides)`: a started API app on the test's database, its
    gate's snapshot in tmp_path (never the working directory, PostgreSQL's default)."""

    async def make(**overrides: Any) -> Api:
        overrides.setdefault("gate_snapshot", tmp_path / "gate.snapshot")
        settings = make_settings(db_target, **overrides)
        client: Client = await aiohttp_client(create_app(settings, clock=clock))
        return Api(client, clock)

    return make


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


class GateTestServer(BaseTestServer):
    """The internal listener (gateway.gate.listener, not an aiohttp app) on a free loopback port,
    behind aiohttp's test client: tests speak to it over real sockets as Caddy does."""

    def __init__(self, api_app: web.Application) -> None:
        super().__init__(host="127.0.0.1")
        self._listener = create_internal_listener(api_app)

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **_: Any) -> None:
        await self._listener.start(self.host, 0)
        self.port = self._listener.port
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def _make_runner(self, **kwargs: Any) -> Any:
        raise NotImplementedError("the internal listener is not an aiohttp runner")

    async def close(self) -> None:
        if not self._closed:
            await self._listener.close()
            self._root = None
            self._closed = True


async def gate_client(aiohttp_client: AiohttpClient, api_app: web.Application) -> Client:
    """A client of the internal listener (gate, route, health, metrics) on `api_app`'s
    resources. Typed as the API's client: tests use only what both have (requests, `server`)."""
    return cast(Client, await aiohttp_client(GateTestServer(api_app)))


@pytest.fixture
async def internal(aiohttp_client: AiohttpClient, api: Api) -> Client:
    """The internal listener (gate, route, health, metrics), on the API app's resources."""
    return await gate_client(aiohttp_client, api.app)


def set_status(db: Where, hostname: str, status: str) -> None:
    """Change a live domain's status through a second, independent connection (as the
    reconciler process would); the schema's triggers bump its change sequence."""
    changed = sql(
        db,
        "UPDATE domains SET status = ? WHERE hostname = ? AND status != 'removed' RETURNING id",
        (status, hostname),
    )
    assert len(changed) == 1, f"no live domain {hostname}"


def sql(where: Where, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (`?` placeholders) on its own connection to `where`, a SQLite file or a
    PostgreSQL URL; returns the rows (committed)."""
    db = location(where)
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


def sql_rows(where: Where, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """`sql()`, each row as a dict of its columns."""
    db = location(where)
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


async def gate_synced(api: Api, *, timeout: float = 1.0) -> None:
    """Wait until the gate's watcher has read every committed change to `domains` (its sequence
    high-water mark has reached the table's)."""
    allowlist = api.app[ALLOWLIST]
    target = int(sql(api.db_target, "SELECT coalesce(max(seq), 0) FROM domains")[0][0])

    async def caught_up() -> bool:
        return allowlist.last_seq >= target

    await await_until(caught_up, timeout=timeout, interval=0.01, what="the gate's watcher")


async def tls_ask(gate: Client, name: str) -> int:
    """The gate's answer to Caddy's ask for `name`: 200 (allowed) or 403."""
    async with gate.get("/tls-ask", params={"domain": name}) as response:
        return response.status


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
