"""The app resource: the platform registers and removes apps for tenants; tenants read theirs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, Api, Client, Reply, gate_synced, set_status

TENANT = "X-Domaingate-Tenant"


async def put(api: Api, tenant: str, app: str, body: Any = None) -> Reply:
    return await api.call(
        "PUT", f"/api/v1/apps/{app}", token=ADMIN_TOKEN, headers={TENANT: tenant}, json_body=body
    )


async def test_the_platform_registers_apps_and_tenants_read_their_own(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    created = await put(api, "acme", "shop")
    assert created.status == 201
    assert {k: v for k, v in created.body.items() if k != "now"} == {
        "app": "shop",
        "upstream": None,
    }
    assert (await put(api, "acme", "blog", {"upstream": "blog.internal:8080"})).status == 201
    changed = await put(api, "acme", "shop", {"upstream": "[2001:db8::1]:443"})
    assert (changed.status, changed.body["upstream"]) == (200, "[2001:db8::1]:443")
    assert (await put(api, "globex", "store", {})).status == 201

    mine = await api.call("GET", "/api/v1/apps", token=acme)
    assert mine.body["apps"] == [
        {"app": "blog", "upstream": "blog.internal:8080"},
        {"app": "shop", "upstream": "[2001:db8::1]:443"},
    ]
    theirs = await api.call("GET", "/api/v1/apps", token=globex)
    assert theirs.body["apps"] == [{"app": "store", "upstream": None}]
    everyone = await api.call("GET", "/api/v1/apps", token=ADMIN_TOKEN)
    assert [(a["app"], a["tenant"]) for a in everyone.body["apps"]] == [
        ("blog", "acme"),
        ("shop", "acme"),
        ("store", "globex"),
    ]


async def test_an_app_never_changes_hands(api: Api) -> None:
    await api.tenant("acme")
    await api.tenant("globex")
    assert (await put(api, "acme", "shop")).status == 201
    taken = await put(api, "globex", "shop", {"upstream": "evil.internal:80"})
    assert (taken.status, taken.code) == (409, "APP_TAKEN")
    gone = await api.call(
        "DELETE", "/api/v1/apps/shop", token=ADMIN_TOKEN, headers={TENANT: "globex"}
    )
    assert (gone.status, gone.code) == (404, "APP_NOT_FOUND")


@pytest.mark.parametrize(
    "upstream",
    [
        "http://shop:80",
        "shop",
        "shop:",
        ":80",
        "shop:0",
        "shop:65536",
        "shop:80/x",
        "a b:80",
        "[::1:80",
        "[shop]:80",
        "1.2.3:80",
        80,
        ["shop:80"],
        "x" * 300 + ":80",
    ],
)
async def test_bad_upstreams_are_refused(api: Api, upstream: Any) -> None:
    await api.tenant("acme")
    reply = await put(api, "acme", "shop", {"upstream": upstream})
    assert (reply.status, reply.code) == (400, "INVALID_REQUEST"), upstream


async def test_writing_apps_needs_the_admin_token_and_a_tenant(api: Api) -> None:
    acme = await api.tenant("acme")
    for method in ("PUT", "DELETE"):
        reply = await api.call(method, "/api/v1/apps/shop", token=acme)
        assert (reply.status, reply.code) == (403, "FORBIDDEN")
        reply = await api.call(method, "/api/v1/apps/shop", token=ADMIN_TOKEN)
        assert (reply.status, reply.code) == (400, "INVALID_REQUEST")
    bad = await put(api, "acme", "Shop")
    assert (bad.status, bad.code) == (400, "INVALID_APP")
    unknown = await put(api, "acme", "shop", {"upstream": None, "owner": "acme"})
    assert (unknown.status, unknown.code) == (400, "INVALID_REQUEST")


async def test_an_app_in_use_is_not_removed(api: Api) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com", app="shop")
    path = "/api/v1/apps/shop"
    busy = await api.call("DELETE", path, token=ADMIN_TOKEN, headers={TENANT: "acme"})
    assert (busy.status, busy.code, busy.body["error"]["domains"]) == (409, "APP_IN_USE", 1)
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
    done = await api.call("DELETE", path, token=ADMIN_TOKEN, headers={TENANT: "acme"})
    assert done.status == 204
    reply = await api.post_domain(acme, "shop.acme.com", app="shop", register=False)
    assert reply.code == "INVALID_APP"


async def test_a_new_upstream_reaches_the_gate(api: Api, internal: Client) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com", app="shop")
    set_status(api.db_target, "shop.acme.com", "active")
    await gate_synced(api)
    await put(api, "acme", "shop", {"upstream": "10.1.2.3:8080"})
    await gate_synced(api)
    async with internal.get("/route", headers={"X-Forwarded-Host": "shop.acme.com"}) as response:
        assert response.headers["X-Domaingate-Upstream"] == "10.1.2.3:8080"
