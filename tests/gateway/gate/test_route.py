"""GET /route (Caddy's forward_auth): the app and upstream of an allowed host, 404 otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import Follower
from gateway.keys import SETTINGS
from tests.conftest import (
    Api,
    ApiFactory,
    Client,
    both_backends,
    gate_client,
    gate_synced,
    raw_get,
    set_status,
    sql,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


async def route(internal: Client, *hosts: str) -> tuple[int, dict[str, str]]:
    headers = [("X-Forwarded-Host", host) for host in hosts]
    async with internal.get("/route", headers=headers) as response:
        found = {
            name: response.headers[name]
            for name in ("X-Domaingate-App", "X-Domaingate-Upstream")
            if name in response.headers
        }
        return response.status, found


@pytest.fixture
async def served(api: Api) -> str:
    """shop.acme.com (app web) verified, blog.acme.com (app blog) pending; returns the token."""
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com", app="web")
    await api.attach(token, "blog.acme.com", app="blog")
    set_status(api.db_target, "shop.acme.com", "verified")
    await gate_synced(api)
    return token


async def test_an_allowed_host_is_routed_to_its_app(served: str, internal: Client) -> None:
    for host in ("shop.acme.com:443", "shop.acme.com", "SHOP.Acme.com:8443", "shop.acme.com.:443"):
        status, headers = await route(internal, host)
        assert status == 200, host
        assert headers == {"X-Domaingate-App": "web", "X-Domaingate-Upstream": "web.internal:80"}


NOT_ROUTED: list[tuple[str, ...]] = [
    (),
    ("",),
    ("blog.acme.com:443",),  # pending
    ("unknown.example.org:443",),
    ("shop.acme.com:443:443",),
    ("shop.acme.com:",),
    ("shop.acme.com:443", "shop.acme.com:443"),
    ("[::1]:443",),
    ("127.0.0.1:443",),
    ("shop.acme.com :443",),
    ("shop.acme.com/x",),
    ("*.acme.com:443",),
]


async def test_anything_else_is_not_found(served: str, internal: Client) -> None:
    for hosts in NOT_ROUTED:
        status, headers = await route(internal, *hosts)
        assert status == 404, hosts
        assert headers == {}, hosts


async def test_non_ascii_forwarded_hosts_are_not_found(served: str, internal: Client) -> None:
    for value in (b"\xe2\x84\xaa.acme.com", b"shop\xef\xbc\x8eacme.com", b"\xff"):
        status = await raw_get(internal, b"/route", b"X-Forwarded-Host: " + value + b"\r\n")
        assert status == 404, value


@pytest.mark.parametrize("status", ["active", "expiring", "failed", "removed"])
async def test_route_follows_the_status(
    api: Api, served: str, internal: Client, status: str
) -> None:
    set_status(api.db_target, "shop.acme.com", status)
    await gate_synced(api)
    expected = 200 if status in {"active", "expiring"} else 404
    assert (await route(internal, "shop.acme.com:443"))[0] == expected


async def test_upstream_template_names_the_upstream(
    api_factory: ApiFactory, aiohttp_client: AiohttpClient
) -> None:
    api = await api_factory(upstream_template="{app}.svc.cluster.local:8080")
    internal: Client = await gate_client(aiohttp_client, api.app)
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com", app="web")
    set_status(api.db_target, "shop.acme.com", "active")
    await gate_synced(api)
    status, headers = await route(internal, "shop.acme.com:443")
    assert status == 200
    assert headers["X-Domaingate-Upstream"] == "web.svc.cluster.local:8080"


async def test_an_app_change_by_another_process_reroutes(
    api: Api, served: str, internal: Client
) -> None:
    await api.register(served, "shop2")
    sql(api.db_target, "UPDATE domains SET app = 'shop2' WHERE hostname = 'shop.acme.com'")
    await gate_synced(api)
    assert (await route(internal, "shop.acme.com"))[1]["X-Domaingate-App"] == "shop2"


async def test_the_apps_own_upstream_is_named_and_follows_its_changes(
    api: Api, served: str, internal: Client
) -> None:
    await api.register(served, "web", upstream="10.0.0.7:8080")
    await gate_synced(api)
    assert (await route(internal, "shop.acme.com"))[1]["X-Domaingate-Upstream"] == "10.0.0.7:8080"
    # Changed by another process (the CLI): the gate follows within its poll.
    sql(api.db_target, "UPDATE apps SET upstream = 'web-2.internal:81' WHERE name = 'web'")
    await gate_synced(api)
    upstream = (await route(internal, "shop.acme.com"))[1]["X-Domaingate-Upstream"]
    assert upstream == "web-2.internal:81"
    sql(api.db_target, "UPDATE apps SET upstream = NULL WHERE name = 'web'")
    await gate_synced(api)
    assert (await route(internal, "shop.acme.com"))[1]["X-Domaingate-Upstream"] == (
        "web.internal:80"
    )


async def test_the_template_names_the_tenant(
    api_factory: ApiFactory, aiohttp_client: AiohttpClient
) -> None:
    api = await api_factory(upstream_template="{app}.{tenant}.svc:8080")
    internal = await gate_client(aiohttp_client, api.app)
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com", app="web")
    set_status(api.db_target, "shop.acme.com", "verified")
    await gate_synced(api)
    assert (await route(internal, "shop.acme.com"))[1]["X-Domaingate-Upstream"] == (
        "web.acme.svc:8080"
    )


@pytest.mark.parametrize("app", ["admin", "vault"])
async def test_a_domain_on_an_app_not_its_tenants_is_never_routed(
    api: Api, served: str, internal: Client, app: str
) -> None:
    """Whatever put it there (a row from before apps had owners, a hand edit), a domain whose app
    is not its tenant's is neither routed nor allowed: `admin` is nobody's app, `vault` is
    another tenant's."""
    globex = await api.tenant("globex")
    await api.register(globex, "vault")
    sql(api.db_target, "UPDATE domains SET app = ? WHERE hostname = 'shop.acme.com'", (app,))
    await gate_synced(api)
    assert (await route(internal, "shop.acme.com"))[0] == 404
    async with internal.get("/tls-ask", params={"domain": "shop.acme.com"}) as response:
        assert response.status == 403
    # A restart loads the same view.
    loaded = Allowlist()
    sync = Follower.of(api.db.target, loaded, api.app[SETTINGS].upstream)
    await sync.open()
    try:
        assert loaded.loaded
        assert "shop.acme.com" not in loaded
    finally:
        await sync.close()


async def test_delete_through_the_api_stops_routing_at_once(
    api: Api, served: str, internal: Client
) -> None:
    assert (await route(internal, "shop.acme.com:443"))[0] == 200
    reply = await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=served)
    assert reply.status == 204
    assert (await route(internal, "shop.acme.com:443"))[0] == 404
    async with internal.get("/tls-ask", params={"domain": "shop.acme.com"}) as response:
        assert response.status == 403


async def test_delete_holds_at_once_even_with_the_watcher_stopped(
    api_factory: ApiFactory, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database watcher unable to see anything, only the API's own update of the
    in-memory view can withdraw the name: it must, in the same request."""

    async def blind_poll(self: object) -> int:
        return 0

    monkeypatch.setattr(Follower, "poll", blind_poll)
    api = await api_factory()
    internal: Client = await gate_client(aiohttp_client, api.app)
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", "verified")
    # Not visible to a blind watcher: the gate loaded before the change.
    assert (await route(internal, "shop.acme.com"))[0] == 404
    # A restart loads it (the initial load does not poll).
    api = await api_factory()
    internal = await gate_client(aiohttp_client, api.app)
    assert (await route(internal, "shop.acme.com"))[0] == 200
    reply = await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=token)
    assert reply.status == 204
    assert (await route(internal, "shop.acme.com"))[0] == 404
    async with internal.get("/tls-ask", params={"domain": "shop.acme.com"}) as response:
        assert response.status == 403
