"""The tenant isolation matrix: every endpoint and method, aimed at tenant B's domain, by every
kind of caller.

Callers are B itself and the admin acting for B or for everyone (they may see and change B's
domain), tenant A and the admin acting for A (strangers: another tenant's domain is a 404, never a
403), and callers with bad credentials or a bad X-Domaingate-Tenant (401 / 400, whatever the
endpoint). For everyone but B's side: nothing in the database changes, no piece of B's data
(tenant, API token, TXT value, event ids, a cursor onto B's row) appears in the answer's body or
headers, and a request naming B's domain is answered word for word as one naming a domain nobody
holds. Every case, and every attack below, runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from domaingate.lifecycle.limits import ATTACH_LIMIT_PER_TENANT, VERIFY_LIMIT_PER_DOMAIN
from domaingate.store import tenants
from gateway.api.inputs import encode_cursor
from gateway.app import create_app
from reconciler.cleanup import clean_removed
from tests.conftest import (
    ADMIN_TOKEN,
    EDGE_IPV4,
    T0,
    Api,
    Client,
    FakeClock,
    Reply,
    both_backends,
    make_settings,
    sql,
)
from tests.reconciler.conftest import make_issuer, make_leaf_pem, store_cert
from tests.support.knot import Knot
from tests.support.postgres import Cluster

# Every case runs in the module's event loop, where the shared world's server lives.
pytestmark = pytest.mark.asyncio(loop_scope="module")

Role = Literal["owner", "everyone", "stranger", "unauthorized", "bad_tenant"]
Expected = tuple[int, str | None]  # status and error code (None: no error body)

A_HOST = "shop.acme.com"
B_HOST = "store.umbrella.org"
TWIN = "store.nobodyat.org"  # as long as B_HOST, so even Content-Length cannot tell them apart
TABLES = ("tenants", "apps", "domains", "domain_events", "webhook_outbox", "verify_attempts")
NOT_FOUND: Expected = (404, "DOMAIN_NOT_FOUND")
NOT_ALLOWED: Expected = (405, "METHOD_NOT_ALLOWED")
TAKEN: Expected = (409, "HOSTNAME_ALREADY_REGISTERED")
LE = "acme-v02.api.letsencrypt.org-directory"  # an issuer directory in Caddy's storage


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # under /api/v1; {d} is the domain aimed at
    owner: Expected  # B, or the admin acting for B
    stranger: Expected  # A, or the admin acting for A
    everyone: Expected  # the admin without X-Domaingate-Tenant
    mutates: bool = False  # changes B's domain when B's side calls it
    shows_b: bool = False  # B's side gets B's TXT value in the body

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    # Attaching B's name (verified): the one answer that must say the name is held (the spec's
    # rule), each caller with an app of its own.
    Endpoint("POST", "/domains", TAKEN, TAKEN, (400, "INVALID_REQUEST")),
    # Apps: each tenant sees its own; B's app name reaches nobody else.
    Endpoint("GET", "/apps", (200, None), (200, None), (200, None)),
    Endpoint("GET", "/domains", (200, None), (200, None), (200, None), shows_b=True),
    Endpoint("GET", "/domains/{d}", (200, None), NOT_FOUND, (200, None), shows_b=True),
    Endpoint("HEAD", "/domains/{d}", (200, None), (404, None), (200, None)),
    Endpoint("DELETE", "/domains/{d}", (204, None), NOT_FOUND, (204, None), mutates=True),
    Endpoint("POST", "/domains/{d}/verify", (200, None), NOT_FOUND, (200, None), mutates=True),
    Endpoint("GET", "/domains/{d}/events", (200, None), NOT_FOUND, (200, None)),
    *(
        Endpoint(method, path, NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED)
        for method, path in (
            ("PUT", "/domains"),
            ("DELETE", "/domains"),
            ("PATCH", "/domains/{d}"),
            ("OPTIONS", "/domains/{d}"),
            ("GET", "/domains/{d}/verify"),
            ("POST", "/domains/{d}/events"),
            ("POST", "/apps"),
            ("PATCH", "/apps/{d}"),
        )
    ),
]


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: Role
    authorization: str | None  # {a}, {b}, {c} and {admin} stand for the tokens
    tenant: tuple[str, ...] = ()  # an X-Domaingate-Tenant header for each

    def __str__(self) -> str:
        return self.name


CALLERS = [
    Caller("tenant B", "owner", "Bearer {b}"),
    Caller("admin for B", "owner", "Bearer {admin}", tenant=("globex",)),
    Caller("admin for all", "everyone", "Bearer {admin}"),
    Caller("tenant A", "stranger", "Bearer {a}"),
    Caller("tenant A naming itself", "stranger", "Bearer {a}", tenant=("acme",)),
    # RFC 6750: credentials = "Bearer" 1*SP b64token, so more than one space is still A.
    Caller("tenant A, two spaces", "stranger", "Bearer  {a}"),
    Caller("admin for A", "stranger", "Bearer {admin}", tenant=("acme",)),
    Caller("tenant A naming B", "bad_tenant", "Bearer {a}", tenant=("globex",)),
    Caller("admin for an unknown tenant", "bad_tenant", "Bearer {admin}", tenant=("nobody",)),
    Caller("admin for a revoked tenant", "bad_tenant", "Bearer {admin}", tenant=("initech",)),
    Caller("admin naming B, then A", "bad_tenant", "Bearer {admin}", tenant=("globex", "acme")),
    Caller("tenant A naming itself, then B", "bad_tenant", "Bearer {a}", tenant=("acme", "globex")),
    Caller("revoked token", "unauthorized", "Bearer {c}"),
    Caller("no token", "unauthorized", None),
    Caller("Basic scheme", "unauthorized", "Basic {a}"),
    Caller("no scheme", "unauthorized", "{a}"),
    Caller("empty bearer", "unauthorized", "Bearer"),
    Caller("bearer of spaces", "unauthorized", "Bearer    "),
    Caller("space inside the token", "unauthorized", "Bearer {a_split}"),
    Caller("tab for the space", "unauthorized", "Bearer\t{a}"),
    Caller("non-ASCII after the token", "unauthorized", "Bearer {a}\u00e9"),
    Caller("non-ASCII token", "unauthorized", "Bearer dgt_\u0142\u00f3\u017c\u2603"),
    Caller("4 KiB token", "unauthorized", "Bearer {a}" + "f" * 4096),
]


@dataclass(frozen=True, slots=True)
class World:
    api: Api
    tokens: dict[str, str]
    b_txt: str
    b_secrets: list[str]  # none of these may reach anyone outside B's side


@asynccontextmanager
async def opened_world(db: Path | str) -> AsyncIterator[World]:
    """The API on a loopback port over a fresh database at `db`, with A's, B's and C's tenants."""
    clock = FakeClock()
    # B's side verifying: a 50 ms DNS budget against nothing rather than the default seconds.
    app = create_app(make_settings(db, dns_timeout=0.05), clock=clock)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield await populate(Api(client, clock))
    finally:
        await client.close()


async def populate(api: Api) -> World:
    a, b, c = [await api.tenant(name) for name in ("acme", "globex", "initech")]
    await api.attach(a, A_HOST)
    attached = await api.attach(b, B_HOST, app="vault")
    # B has proven its name: it holds it.
    sql(
        api.db_target,
        "UPDATE domains SET status = 'verified', verified_at = ? WHERE hostname = ?",
        (api.clock(), B_HOST),
    )
    await tenants.revoke(api.db, "initech", api.clock)
    (b_id,) = sql(api.db_target, "SELECT id FROM domains WHERE hostname = ?", (B_HOST,))[0]
    events = sql(api.db_target, "SELECT event_id FROM domain_events WHERE domain_id = ?", (b_id,))
    txt = attached["txt_record"]["value"]
    secrets = ["globex", "vault", b, txt, encode_cursor(b_id), *(row[0] for row in events)]
    tokens = {"a": a, "b": b, "c": c, "admin": ADMIN_TOKEN, "a_split": f"{a[:20]} {a[20:]}"}
    return World(api, tokens, txt, secrets)


# One world serves every case that must leave it as it was (and checks that it does): starting an
# app per case would cost more than the case.
@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    if request.param == "postgresql":
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        url = cluster.database()
        try:
            async with opened_world(url) as world:
                yield world
        finally:
            cluster.drop(url)
        return
    async with opened_world(tmp_path_factory.mktemp("isolation") / "domaingate.db") as world:
        yield world


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """A fresh database for an attack's world of its own, on either backend."""
    return both_backends(request, db_path)


@pytest.fixture
def fresh(request: pytest.FixtureRequest, shared: World, db_path: Path) -> Path | str:
    """A fresh database on the shared world's backend, for a case that changes its world."""
    if isinstance(shared.api.db_target, str):
        url: str = request.getfixturevalue("pg_url")
        return url
    return db_path


def snapshot(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    # By the first column: each table's key, on either backend (PostgreSQL has no rowid).
    return {table: sql(api.db_target, f"SELECT * FROM {table} ORDER BY 1") for table in TABLES}


async def send(world: World, endpoint: Endpoint, caller: Caller, name: str) -> Reply:
    headers = [("X-Domaingate-Tenant", tenant) for tenant in caller.tenant]
    if caller.authorization is not None:
        headers.append(("Authorization", caller.authorization.format(**world.tokens)))
    path = "/api/v1" + endpoint.path.format(d=name)
    # Each side attaches with an app of its own (B's is `vault`, A's the default `shop`).
    app = "vault" if caller.role in ("owner", "everyone") else "shop"
    body = {"domain": name, "app": app} if endpoint.path == "/domains" else None
    # Not Api.call: a HEAD answer has a JSON content type and no body to parse.
    async with world.api.client.request(
        endpoint.method, path, headers=headers, json=body
    ) as response:
        text = (await response.read()).decode()
        parsed = json.loads(text) if text and response.content_type == "application/json" else text
        return Reply(response.status, parsed, response.headers)


def expected(endpoint: Endpoint, role: Role) -> Expected:
    if role == "unauthorized":
        return (401, None if endpoint.method == "HEAD" else "UNAUTHORIZED")
    if role == "bad_tenant":
        return (400, None if endpoint.method == "HEAD" else "INVALID_REQUEST")
    return {"owner": endpoint.owner, "everyone": endpoint.everyone, "stranger": endpoint.stranger}[
        role
    ]


def everything_in(reply: Reply) -> str:
    headers = "\n".join(f"{key}: {value}" for key, value in reply.headers.items())
    return f"{headers}\n{json.dumps(reply.body)}"


def word_for_word(reply: Reply, name: str) -> tuple[int, str, dict[str, str]]:
    """The reply with `name` blanked out, and without its Date."""
    headers = {key: value.replace(name, "*") for key, value in reply.headers.items()}
    del headers["Date"]
    return reply.status, json.dumps(reply.body).replace(name, "*"), headers


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("caller", CALLERS, ids=str)
async def test_isolation_matrix(
    shared: World, request: pytest.FixtureRequest, caller: Caller, endpoint: Endpoint
) -> None:
    if caller.role in ("owner", "everyone") and endpoint.mutates:
        # B's side changes B's domain: in a world of its own, so the shared one stays as it was.
        async with opened_world(request.getfixturevalue("fresh")) as world:
            await check(world, caller, endpoint)
    else:
        await check(shared, caller, endpoint)


async def check(world: World, caller: Caller, endpoint: Endpoint) -> None:
    api = world.api
    before = snapshot(api)
    reply = await send(world, endpoint, caller, B_HOST)
    assert (reply.status, reply.code) == expected(endpoint, caller.role), reply

    if caller.role in ("owner", "everyone"):
        # Controls: B's side really reaches B's domain, and the leak check below would see it.
        if endpoint.shows_b:
            assert world.b_txt in everything_in(reply)
        changed = snapshot(api) != before
        assert changed == (endpoint.mutates and reply.status < 300)
        return

    assert snapshot(api) == before
    leaked = [secret for secret in world.b_secrets if secret in everything_in(reply)]
    assert leaked == []
    if endpoint.path == "/domains" and endpoint.method == "GET" and reply.status == 200:
        assert [domain["domain"] for domain in reply.body["domains"]] == [A_HOST]
    if "{d}" in endpoint.path:
        # Nothing tells B's domain apart from a name nobody attached, not even a header.
        twin = await send(world, endpoint, caller, TWIN)
        assert word_for_word(reply, B_HOST) == word_for_word(twin, TWIN)


# --- The review's attacks, each as the attacker tried it ------------------------------------------
# In each, tenant A (acme, app `shop`) is mallory and tenant B (globex, app `vault`) the victim.


async def test_attack_mallory_routes_her_domain_to_another_tenants_app(
    db_target: Path | str,
) -> None:
    """Her own name, verified by her, but routed to B's app or to an internal service: the app
    must be hers, and the refusal is the same whether the app exists elsewhere or not."""
    async with opened_world(db_target) as world:
        api, a = world.api, world.tokens["a"]
        before = snapshot(api)
        replies = {
            app: await api.post_domain(a, "mallory.example", app=app, register=False)
            for app in ("vault", "admin")
        }
        for app, reply in replies.items():
            assert (reply.status, reply.code) == (400, "INVALID_APP"), (app, reply)
        vault, admin = (word_for_word(replies[app], app) for app in ("vault", "admin"))
        assert vault == admin
        assert snapshot(api) == before
        # With her own app she attaches; nothing she sends names an upstream.
        reply = await api.call(
            "POST",
            "/api/v1/domains",
            token=a,
            json_body={"domain": "mallory.example", "app": "shop", "upstream": "admin:80"},
        )
        assert (reply.status, reply.code) == (400, "INVALID_REQUEST")
        # Nor may she register apps or upstreams: only the platform does.
        for method in ("PUT", "DELETE"):
            for app in ("admin", "shop", "vault"):
                reply = await api.call(
                    method, f"/api/v1/apps/{app}", token=a, json_body={"upstream": "admin:80"}
                )
                assert (reply.status, reply.code) == (403, "FORBIDDEN"), (method, app)
        assert snapshot(api) == before


async def test_attack_claiming_a_name_cnamed_to_another_tenants_app(
    db_target: Path | str,
) -> None:
    """B has pointed shop.victim.test at its app; mallory claims the name first. Her claim can
    never verify (the CNAME proves the name routes to B's app), B's does, and hers fails."""
    zones = {
        "apps.test": f"vault A {EDGE_IPV4}\nshop A {EDGE_IPV4}\n",
        "victim.test": "shop CNAME vault.apps.test.\n",
    }
    with Knot(zones) as knot:
        clock = FakeClock()
        settings = make_settings(
            db_target,
            resolvers=(knot.listen,),
            platform_zone="apps.test",
            dns_timeout=3.0,
        )
        client: Client = TestClient(TestServer(create_app(settings, clock=clock)))
        await client.start_server()
        try:
            api = Api(client, clock)
            mallory, victim = await api.tenant("mallory"), await api.tenant("victim")
            await api.register(mallory, "shop")
            await api.register(victim, "vault")
            reply = await api.post_domain(mallory, "shop.victim.test", app="vault", register=False)
            assert reply.code == "INVALID_APP"
            await api.attach(mallory, "shop.victim.test", app="shop")
            path = "/api/v1/domains/shop.victim.test/verify"
            hers = await api.call("POST", path, token=mallory)
            assert hers.body["status"] == "pending"
            assert hers.body["last_check_error"]["code"] == "cname_wrong_target"
            await api.attach(victim, "shop.victim.test", app="vault")
            theirs = await api.call("POST", path, token=victim)
            assert theirs.body["status"] == "verified", theirs
            lost = await api.call("GET", "/api/v1/domains/shop.victim.test", token=mallory)
            assert lost.body["status"] == "failed"
            assert lost.body["last_check_error"]["code"] == "hostname_taken"
            events = await api.call("GET", f"{path[:-7]}/events", token=mallory)
            assert events.body["events"][-1]["reason"] == "hostname_taken"
        finally:
            await client.close()


async def test_attack_a_pending_claim_blocks_the_owner(db_target: Path | str) -> None:
    async with opened_world(db_target) as world:
        api, a, b = world.api, world.tokens["a"], world.tokens["b"]
        for status in ("pending", "failed"):
            name = f"{status}.umbrella.org"
            await api.attach(a, name)
            sql(api.db_target, "UPDATE domains SET status = ? WHERE hostname = ?", (status, name))
            claim = await api.attach(b, name, app="vault")
            assert (claim["tenant"], claim["status"]) == ("globex", "pending")


async def test_attack_detaching_imposes_the_cooldown_on_the_owner(db_target: Path | str) -> None:
    async with opened_world(db_target) as world:
        api, a, b = world.api, world.tokens["a"], world.tokens["b"]
        for status in ("pending", "failed"):
            name = f"{status}.umbrella.org"
            await api.attach(a, name)
            sql(api.db_target, "UPDATE domains SET status = ? WHERE hostname = ?", (status, name))
            assert (await api.call("DELETE", f"/api/v1/domains/{name}", token=a)).status == 204
            claim = await api.attach(b, name, app="vault")
            assert claim["tenant"] == "globex"


async def test_attack_spending_the_owners_verify_allowance(db_target: Path | str) -> None:
    """B is setting up a name; mallory claims it too and spends five verify-nows on it. The
    per-domain limit counts each claim's own: B's Verify now is still answered, not 429."""
    async with opened_world(db_target) as world:
        api, a, b = world.api, world.tokens["a"], world.tokens["b"]
        name = "new.umbrella.org"
        await api.attach(b, name, app="vault")
        await api.attach(a, name)
        path = f"/api/v1/domains/{name}/verify"
        for _ in range(VERIFY_LIMIT_PER_DOMAIN):
            assert (await api.call("POST", path, token=a)).status == 200
        spent = await api.call("POST", path, token=a)
        assert (spent.status, spent.code) == (429, "VERIFY_RATE_LIMITED")
        theirs = await api.call("POST", path, token=b)
        assert (theirs.status, theirs.code) == (200, None), theirs
        assert theirs.body["status"] == "pending"


async def test_attack_attach_and_detach_of_an_unproven_name_deletes_a_certificate(
    tmp_path: Path, db_target: Path | str
) -> None:
    """The operator's own site shares Caddy's storage; mallory attaches its name and detaches
    it. Clean-up must leave the certificate (and so must it for reserved names, even proven)."""
    storage = tmp_path / "caddy"
    issuer = make_issuer("R11")
    now = T0
    sites = ["www.operator.example", "status.corp.example", "x.apps.example.net"]
    for site in sites:
        store_cert(storage, LE, site, make_leaf_pem(issuer, [site], now - 86400, now + 86400))
    async with opened_world(db_target) as world:
        api, a = world.api, world.tokens["a"]
        await api.attach(a, "www.operator.example")
        assert (
            await api.call("DELETE", "/api/v1/domains/www.operator.example", token=a)
        ).status == 204
        # Names reserved after they were attached and proven (planted, as an old version could).
        (a_id,) = sql(api.db_target, "SELECT id FROM tenants WHERE name = 'acme'")[0]
        for site in sites[1:]:
            sql(
                api.db_target,
                "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
                " created_at, updated_at, verified_at, removed_at)"
                " VALUES (?, ?, 'shop', 'removed', 'subdomain', 'cname', 'dg_x', ?, ?, ?, ?)",
                (site, a_id, now, now, now, now),
            )
        result = await clean_removed(
            api.db, storage, api.clock, reserved_zones=("apps.example.net", "corp.example")
        )
        assert (result.cleaned, result.deleted_dirs) == (3, 0)
    for site in sites:
        assert (storage / "certificates" / LE / site / f"{site}.crt").exists(), site


BAD_NUMBERS = [
    {"limit": "000499999999"},
    {"limit": "0000099999999999999999999"},
    {"limit": "9" * 400},
    {"limit": "0"},
    {"limit": "501"},
    {"cursor": "ZDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"},
    {"cursor": "ZDowMDAwOTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"},
]


async def test_attack_bad_numbers_reach_the_database(shared: World) -> None:
    for caller in ("a", "admin"):
        for params in BAD_NUMBERS:
            reply = await shared.api.call(
                "GET", "/api/v1/domains", token=shared.tokens[caller], params=params
            )
            assert (reply.status, reply.code) == (400, "INVALID_REQUEST"), (params, reply)


async def test_attack_attach_flooding(db_target: Path | str) -> None:
    """300 attach-and-detach cycles once took 1.3 s; now a tenant attaches 30 an hour."""
    async with opened_world(db_target) as world:
        api, a, b = world.api, world.tokens["a"], world.tokens["b"]
        api.clock.advance(3600)  # the world's own attaches are an hour old
        for i in range(ATTACH_LIMIT_PER_TENANT):
            await api.attach(a, f"flood{i}.acme.com")
            api.clock.advance(1)
            reply = await api.call("DELETE", f"/api/v1/domains/flood{i}.acme.com", token=a)
            assert reply.status == 204
        reply = await api.post_domain(a, "one-more.acme.com")
        assert (reply.status, reply.code) == (429, "ATTACH_RATE_LIMITED")
        wait = 3600 - ATTACH_LIMIT_PER_TENANT
        assert reply.headers["Retry-After"] == str(wait)
        assert reply.body["error"]["retry_after"] == wait
        # Another tenant is not held back, and the hour passes.
        await api.attach(b, "fine.umbrella.org", app="vault")
        api.clock.advance(wait)
        await api.attach(a, "one-more.acme.com")
