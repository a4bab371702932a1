"""Who may call what: tenant tokens, tenant isolation both ways, the admin token."""

from __future__ import annotations

import re

import pytest

from domaingate.store import tenants
from tests.conftest import ADMIN_TOKEN, Api, ApiFactory, sql

ENDPOINTS = [
    ("POST", "/api/v1/domains"),
    ("GET", "/api/v1/domains"),
    ("GET", "/api/v1/domains/shop.acme.com"),
    ("POST", "/api/v1/domains/shop.acme.com/verify"),
    ("GET", "/api/v1/domains/shop.acme.com/events"),
    ("DELETE", "/api/v1/domains/shop.acme.com"),
]
DOMAIN_ENDPOINTS = ENDPOINTS[2:]
TENANT = "X-Domaingate-Tenant"
# Every operation the admin token alone may use, as the OpenAPI document names it.
ADMIN_ONLY = [
    ("get", "/api/v1/status"),
    ("put", "/api/v1/apps/{app}"),
    ("delete", "/api/v1/apps/{app}"),
]


BAD_AUTHORIZATIONS: list[str | None] = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer    ",
    "Basic YWNtZTpzZWNyZXQ=",
    "Token dgt_0000",
    "dgt_" + "0" * 64,
    "Bearer dgt_" + "0" * 64,
    "Bearer " + "x" * 600,
    "Bearer admin-token-for-tests-012345678",  # one character short of the admin token
]


async def test_requests_without_a_valid_token_are_unauthorized(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    for authorization in BAD_AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in ENDPOINTS:
            reply = await api.call(method, path, headers=headers, json_body={})
            assert reply.status == 401, (authorization, method, path, reply)
            assert reply.code == "UNAUTHORIZED"
            assert reply.body["error"]["message"]
    # Nothing changed.
    still = await api.call("GET", "/api/v1/domains/shop.acme.com", token=token)
    assert still.status == 200
    assert still.body["status"] == "pending"


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    token = await api.tenant("acme")
    reply = await api.call("GET", "/api/v1/domains", headers={"Authorization": f"bearer {token}"})
    assert reply.status == 200


async def test_two_authorization_headers_are_refused(api: Api) -> None:
    token = await api.tenant("acme")
    async with api.client.get(
        "/api/v1/domains",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "UNAUTHORIZED"


async def test_a_revoked_tenant_is_unauthorized(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    await tenants.revoke(api.db, "acme", api.clock)
    for method, path in ENDPOINTS:
        reply = await api.call(method, path, token=token, json_body={})
        assert reply.status == 401, (method, path)
        assert reply.code == "UNAUTHORIZED"


async def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    token = await api.tenant("acme")
    assert re.fullmatch(r"dgt_[0-9a-f]{64}", token)
    stored = sql(api.db_target, "SELECT token_hash FROM tenants WHERE name = 'acme'")
    assert bytes(stored[0][0]) != token.encode()
    if isinstance(api.db_target, str):
        # PostgreSQL: no column of any tenant row, as text, holds the token.
        rows = sql(api.db_target, "SELECT t::text FROM tenants t")
        assert any("acme" in row[0] for row in rows)
        assert not any(token in row[0] or token.encode().hex() in row[0] for row in rows)
        return
    files = list(api.db_path.parent.glob(api.db_path.name + "*"))  # the file and its WAL
    assert any(b"acme" in path.read_bytes() for path in files)
    assert not any(token.encode() in path.read_bytes() for path in files)


async def test_another_tenants_domain_is_not_found_on_every_endpoint_both_ways(
    api: Api,
) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    await api.attach(globex, "shop.globex.com")
    for owner, stranger, name in (
        (acme, globex, "shop.acme.com"),
        (globex, acme, "shop.globex.com"),
    ):
        for method, suffix in (
            ("GET", ""),
            ("POST", "/verify"),
            ("GET", "/events"),
            ("DELETE", ""),
        ):
            reply = await api.call(method, f"/api/v1/domains/{name}{suffix}", token=stranger)
            assert reply.status == 404, (name, method, suffix)
            assert reply.code == "DOMAIN_NOT_FOUND"
            # Word for word what a name nobody attached gets: nothing confirms it exists.
            missing = await api.call(
                method, f"/api/v1/domains/nobody.example.org{suffix}", token=stranger
            )
            assert reply.body["error"]["message"].replace(name, "X") == missing.body["error"][
                "message"
            ].replace("nobody.example.org", "X")
        # The stranger's DELETE did nothing.
        still = await api.call("GET", f"/api/v1/domains/{name}", token=owner)
        assert still.status == 200
        assert still.body["status"] == "pending"
    own = await api.call("GET", "/api/v1/domains", token=acme)
    assert [d["domain"] for d in own.body["domains"]] == ["shop.acme.com"]
    own = await api.call("GET", "/api/v1/domains", token=globex)
    assert [d["domain"] for d in own.body["domains"]] == ["shop.globex.com"]


async def test_filters_never_reach_another_tenants_domains(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(globex, "a.globex.com", app="web")
    reply = await api.call(
        "GET", "/api/v1/domains", token=acme, params={"app": "web", "status": "pending"}
    )
    assert reply.body["domains"] == []


async def test_a_tenant_token_cannot_act_for_another_tenant(api: Api) -> None:
    acme = await api.tenant("acme")
    await api.tenant("globex")
    reply = await api.call("GET", "/api/v1/domains", token=acme, headers={TENANT: "globex"})
    assert reply.status == 400
    assert reply.code == "INVALID_REQUEST"
    # Naming itself is harmless.
    reply = await api.call("GET", "/api/v1/domains", token=acme, headers={TENANT: "acme"})
    assert reply.status == 200


async def test_admin_without_a_tenant_lists_and_reads_across_tenants(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    await api.attach(globex, "shop.globex.com")
    await api.attach(acme, "blog.acme.com", app="blog")
    reply = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN)
    assert reply.status == 200
    assert [(d["domain"], d["tenant"]) for d in reply.body["domains"]] == [
        ("shop.acme.com", "acme"),
        ("shop.globex.com", "globex"),
        ("blog.acme.com", "acme"),
    ]
    paged = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN, params={"limit": "2"})
    assert len(paged.body["domains"]) == 2
    assert paged.body["next_cursor"] is not None
    filtered = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN, params={"app": "blog"})
    assert [d["domain"] for d in filtered.body["domains"]] == ["blog.acme.com"]
    shown = await api.call("GET", "/api/v1/domains/shop.globex.com", token=ADMIN_TOKEN)
    assert shown.status == 200
    assert shown.body["tenant"] == "globex"
    events = await api.call("GET", "/api/v1/domains/shop.globex.com/events", token=ADMIN_TOKEN)
    assert events.status == 200


async def test_admin_must_name_a_tenant_to_attach(api: Api) -> None:
    await api.register(await api.tenant("acme"), "shop")
    reply = await api.post_domain(ADMIN_TOKEN, "shop.acme.com")
    assert reply.status == 400
    assert reply.code == "INVALID_REQUEST"
    assert TENANT in reply.body["error"]["message"]
    attached = await api.call(
        "POST",
        "/api/v1/domains",
        token=ADMIN_TOKEN,
        headers={TENANT: "acme"},
        json_body={"domain": "shop.acme.com", "app": "shop"},
    )
    assert attached.status == 201
    assert attached.body["tenant"] == "acme"


async def test_admin_acting_for_a_tenant_sees_only_that_tenant(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    await api.attach(globex, "shop.globex.com")
    as_acme = {TENANT: "acme"}
    listing = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN, headers=as_acme)
    assert [d["domain"] for d in listing.body["domains"]] == ["shop.acme.com"]
    other = await api.call(
        "GET", "/api/v1/domains/shop.globex.com", token=ADMIN_TOKEN, headers=as_acme
    )
    assert other.status == 404
    assert other.code == "DOMAIN_NOT_FOUND"
    removed = await api.call(
        "DELETE", "/api/v1/domains/shop.acme.com", token=ADMIN_TOKEN, headers=as_acme
    )
    assert removed.status == 204
    gone = await api.call("GET", "/api/v1/domains/shop.acme.com", token=acme)
    assert gone.status == 404


async def test_admin_naming_an_unknown_tenant_is_a_bad_request(api: Api) -> None:
    await api.tenant("acme")
    for named in ("nobody", "", "ACME", "a b", "x" * 100):
        reply = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN, headers={TENANT: named})
        assert reply.status == 400, named
        assert reply.code == "INVALID_REQUEST", named


async def test_admin_cannot_act_for_a_revoked_tenant(api: Api) -> None:
    await api.tenant("acme")
    await tenants.revoke(api.db, "acme", api.clock)
    reply = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN, headers={TENANT: "acme"})
    assert reply.status == 400
    assert reply.code == "INVALID_REQUEST"


async def test_without_an_admin_token_setting_nothing_is_admin(api_factory: ApiFactory) -> None:
    api = await api_factory(admin_token=None)
    await api.tenant("acme")
    for guess in (ADMIN_TOKEN, "None", "null"):
        reply = await api.call("GET", "/api/v1/domains", token=guess)
        assert reply.status == 401, guess


async def test_openapi_document_needs_no_token(api: Api) -> None:
    reply = await api.call("GET", "/api/v1/openapi.json")
    assert reply.status == 200
    assert reply.body["openapi"].startswith("3.")
    # A wrong token does not get in the way of the public document either.
    reply = await api.call("GET", "/api/v1/openapi.json", token="wrong")
    assert reply.status == 200


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_an_admin_only_operation_forbids_a_tenant_token(
    api: Api, method: str, path: str
) -> None:
    acme = await api.tenant("acme")
    await api.register(acme, "shop", "shop.internal:80")
    url = path.format(app="shop")
    # A valid token without the right, with or without the tenant header naming its own tenant.
    for headers in ({}, {TENANT: "acme"}):
        reply = await api.call(
            method, url, token=acme, headers=headers, json_body={"upstream": "evil:80"}
        )
        assert (reply.status, reply.code) == (403, "FORBIDDEN"), (method, url, headers)
        assert "admin token" in reply.body["error"]["message"]
    # No token, or one nobody holds, is not known to be anyone: 401, whatever the operation.
    for headers in ({}, {"Authorization": "Bearer dgt_" + "0" * 64}):
        reply = await api.call(method, url, headers=headers, json_body={"upstream": "evil:80"})
        assert (reply.status, reply.code) == (401, "UNAUTHORIZED"), (method, url, headers)
    # Nothing was written, and the admin token gets past the same check.
    reply = await api.call("GET", "/api/v1/apps", token=acme)
    assert reply.body["apps"] == [{"app": "shop", "upstream": "shop.internal:80"}]
    reply = await api.call(method, url, token=ADMIN_TOKEN, headers={TENANT: "acme"})
    assert reply.status < 300, reply


async def test_the_document_says_403_on_the_admin_only_operations_alone(api: Api) -> None:
    doc = (await api.call("GET", "/api/v1/openapi.json")).body
    forbidding = [
        (method, path)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "403" in operation["responses"]
    ]
    assert sorted(forbidding) == sorted(ADMIN_ONLY)
