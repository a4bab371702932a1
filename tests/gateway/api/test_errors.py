"""Every 400/413 error the API promises, and no 500 for anything a client can send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api.inputs import MAX_BODY
from tests.conftest import ADMIN_TOKEN, Api, ApiFactory, raw_http

INVALID_HOSTNAMES = [
    "",
    "   ",
    "localhost",
    "com",
    "co.uk",
    "github.io",
    ".acme.com",
    "acme.com..",
    "shop..acme.com",
    "-shop.acme.com",
    "shop-.acme.com",
    "sh_op.acme.com",
    "shop acme.com",
    "shop.acme.com/path",
    "http://shop.acme.com",
    "shop.acme.com:443",
    "user@shop.acme.com",
    "shop%2eacme.com",
    "shop.acme.com%00",
    "shop\x00.acme.com",
    "shop\u200b.acme.com",
    "shop\u00ad.acme.com",
    "sh\top.acme.com",
    "ab--cd.acme.com",
    "xn--zz.acme.com",
    "a" * 64 + ".acme.com",
    ".".join(["a" * 63] * 4) + ".com",
    "a." * 15 + "acme.com",  # 17 labels
    "a." * 125 + "com",  # 126 labels in 253 octets: a CAA lookup each, at every resolver
    "1.2.3.4",
    "1.2.3.4.",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "shop.acme.123",
    "::1",
    "[::1]",
    "2001:db8::1",
    "shop.acme.com!",
    "😀.acme.com",
]
WILDCARDS = ["*.acme.com", "*", "shop.*.acme.com", "*acme.com", " *.ACME.com. "]


@pytest.fixture
async def token(api: Api) -> str:
    token = await api.tenant("acme")
    await api.register(token, "shop")
    return token


async def attach(api: Api, token: str, body: Any) -> Any:
    return await api.call("POST", "/api/v1/domains", token=token, json_body=body)


async def test_invalid_hostnames_are_refused(api: Api, token: str) -> None:
    # One app for the whole table (a fresh one per case costs more than the case); every
    # mismatch is listed.
    wrong = []
    for name in INVALID_HOSTNAMES:
        reply = await attach(api, token, {"domain": name, "app": "shop"})
        if (reply.status, reply.code) != (400, "INVALID_HOSTNAME"):
            wrong.append((name, reply.status, reply.body))
        elif not reply.body["error"]["message"]:
            wrong.append((name, reply.status, "no message"))
    assert wrong == []
    listing = await api.call("GET", "/api/v1/domains", token=token)
    assert listing.body["domains"] == []


async def test_an_over_long_domain_string_is_refused_cheaply(api: Api, token: str) -> None:
    reply = await attach(api, token, {"domain": "a." * 30_000 + "com", "app": "shop"})
    assert reply.status == 400
    assert reply.code == "INVALID_HOSTNAME"
    assert len(reply.body["error"]["message"]) < 300


async def test_wildcards_are_not_supported(api: Api, token: str) -> None:
    for name in WILDCARDS:
        reply = await attach(api, token, {"domain": name, "app": "shop"})
        assert reply.status == 400, name
        assert reply.code == "WILDCARD_NOT_SUPPORTED", name


async def test_reserved_hostnames_are_refused(api_factory: ApiFactory) -> None:
    api = await api_factory(reserved=("internal.example.org", "corp.test"))
    token = await api.tenant("acme")
    for name in (
        "apps.example.net",  # the platform zone
        "shop.apps.example.net",
        "Deep.Shop.APPS.example.net.",
        "internal.example.org",  # RESERVED
        "x.internal.example.org",
        "a.b.corp.test",
    ):
        reply = await attach(api, token, {"domain": name, "app": "shop"})
        assert reply.status == 400, (name, reply)
        assert reply.code == "RESERVED_HOSTNAME", name


async def test_reserved_suffix_matches_whole_labels_only(api_factory: ApiFactory) -> None:
    api = await api_factory(reserved=("internal.example.org",))
    token = await api.tenant("acme")
    # Neither is inside the reserved zone: one label differs.
    await api.attach(token, "notinternal.example.org")
    await api.attach(token, "shop.myapps.example.net")


INVALID_APPS: list[Any] = [
    "",
    "Shop",
    "-shop",
    "shop-",
    "sh op",
    "sh_op",
    "shop.web",
    "a" * 64,
    "\u00df",
    5,
    None,
    ["x"],
]


async def test_invalid_app_names(api: Api, token: str) -> None:
    for app in INVALID_APPS:
        reply = await attach(api, token, {"domain": "shop.acme.com", "app": app})
        assert reply.status == 400, (app, reply)
        assert reply.code == "INVALID_APP", app


async def test_valid_app_names(api: Api, token: str) -> None:
    for i, app in enumerate(["a", "shop-2", "0", "a" * 63]):
        body = await api.attach(token, f"d{i}.acme.com", app=app)
        assert body["app"] == app
        assert body["instructions"]["records"][0]["value"] == f"{app}.apps.example.net"


NOT_AN_OBJECT: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("truncated", b"{"),
    ("single quotes", b"{'domain': 'a.com'}"),
    ("trailing comma", b'{"domain": "shop.acme.com", "app": "shop",}'),
    ("not UTF-8", b"\xff\xfe\x00"),
    ("nested too deep", b"[" * 30_000 + b"]" * 30_000),
    ("integer past the digit limit", b'{"domain": ' + b"1" * 5000 + b', "app": "shop"}'),
    ("an array", b"[]"),
    ("a string", b'"shop.acme.com"'),
    ("a number", b"42"),
    ("null", b"null"),
    ("a boolean", b"true"),
]


async def test_bodies_that_are_not_a_json_object(api: Api, token: str) -> None:
    for what, data in NOT_AN_OBJECT:
        reply = await api.call(
            "POST",
            "/api/v1/domains",
            token=token,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 400, (what, reply)
        assert reply.code == "INVALID_REQUEST", what


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"domain": "shop.acme.com"}, "app"),
    ({"app": "shop"}, "domain"),
    ({}, "domain"),
    ({"domain": "shop.acme.com", "app": "shop", "tenant": "globex"}, "tenant"),
    ({"domain": "shop.acme.com", "app": "shop", "status": "verified"}, "status"),
    ({"Domain": "shop.acme.com", "app": "shop"}, "Domain"),
    ({"domain": 5, "app": "shop"}, "domain"),
    ({"domain": None, "app": "shop"}, "domain"),
    ({"domain": ["shop.acme.com"], "app": "shop"}, "domain"),
    ({"domain": {"name": "shop.acme.com"}, "app": "shop"}, "domain"),
    ({"domain": True, "app": "shop"}, "domain"),
]


async def test_missing_unknown_and_mistyped_fields(api: Api, token: str) -> None:
    for body, field in BAD_FIELDS:
        reply = await attach(api, token, body)
        assert reply.status == 400, (body, reply)
        assert reply.code == "INVALID_REQUEST", body
        assert field in reply.body["error"]["message"], body


BAD_QUERIES: list[dict[str, str]] = [
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "-1"},
    {"limit": "abc"},
    {"limit": "1.5"},
    {"limit": ""},
    {"limit": " 5"},
    {"limit": "²"},
    {"limit": "٣"},
    {"limit": "9" * 5000},
    # The attack: only the first characters were checked, and the rest reached the database.
    {"limit": "000499999999"},
    {"limit": "0000099999999999999999999"},
    {"limit": "0" * 40 + "1"},
    {"status": "removed"},
    {"status": "bogus"},
    {"status": ""},
    {"status": "PENDING"},
    {"cursor": "garbage!"},
    {"cursor": ""},
    {"cursor": "eDox"},  # base64 of "x:1"
    {"cursor": "ZDphYmM"},  # base64 of "d:abc"
    {"cursor": "ZDotMQ"},  # base64 of "d:-1"
    {"cursor": "ZDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"},  # base64 of "d:" and 27 nines
    {"cursor": "ZDo5MjIzMzcyMDM2ODU0Nzc1ODA4"},  # base64 of "d:9223372036854775808" (2**63)
    {"cursor": "é"},
    {"cursor": "%ff"},
    {"tenant": "globex"},
    {"page": "2"},
]


async def test_bad_list_query_parameters(api: Api, token: str) -> None:
    await api.attach(token, "shop.acme.com")
    for params in BAD_QUERIES:
        reply = await api.call("GET", "/api/v1/domains", token=token, params=params)
        assert reply.status == 400, (params, reply)
        assert reply.code == "INVALID_REQUEST", params


async def test_bad_app_filter(api: Api, token: str) -> None:
    for app in ("", "Shop", "a b", "x" * 64):
        reply = await api.call("GET", "/api/v1/domains", token=token, params={"app": app})
        assert reply.status == 400, app
        assert reply.code == "INVALID_APP", app


async def test_the_largest_cursor_is_accepted(api: Api, token: str) -> None:
    # base64 of "d:9223372036854775807" (2**63 - 1): past every row, so an empty page.
    params = {"cursor": "ZDo5MjIzMzcyMDM2ODU0Nzc1ODA3"}
    reply = await api.call("GET", "/api/v1/domains", token=token, params=params)
    assert reply.status == 200
    assert reply.body["domains"] == []


async def test_limit_bounds_are_accepted(api: Api, token: str) -> None:
    for limit in ("1", "500", "007", "0000000000000000000000000000500"):
        reply = await api.call("GET", "/api/v1/domains", token=token, params={"limit": limit})
        assert reply.status == 200, limit


@pytest.mark.parametrize("path", ["*.acme.com", "1.2.3.4", "a..b.com", "%25ff", "%00", "x" * 70])
async def test_bad_names_in_the_path(api: Api, token: str, path: str) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/verify"), ("GET", "/events")):
        reply = await api.call(method, f"/api/v1/domains/{path}{suffix}", token=token)
        assert reply.status == 400, (method, path, reply)
        assert reply.code in {"INVALID_HOSTNAME", "WILDCARD_NOT_SUPPORTED"}


async def test_an_over_long_path_name_is_refused(api: Api, token: str) -> None:
    reply = await api.call("GET", "/api/v1/domains/" + "a" * 2000 + ".com", token=token)
    assert reply.status == 400
    assert reply.code == "INVALID_HOSTNAME"


async def test_unknown_domain_is_domain_not_found(api: Api, token: str) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/verify"), ("GET", "/events")):
        reply = await api.call(method, f"/api/v1/domains/nothere.acme.com{suffix}", token=token)
        assert reply.status == 404
        assert reply.code == "DOMAIN_NOT_FOUND"


async def test_body_over_64_kib_is_payload_too_large(api: Api, token: str) -> None:
    body = json.dumps({"domain": "shop.acme.com", "app": "shop", "pad": "x" * MAX_BODY}).encode()
    assert len(body) > MAX_BODY
    reply = await api.call(
        "POST",
        "/api/v1/domains",
        token=token,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 413
    assert reply.code == "PAYLOAD_TOO_LARGE"


async def test_chunked_body_over_64_kib_is_payload_too_large(api: Api, token: str) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 4096
        yield b'{"domain": "shop.acme.com", "app": "shop"}'

    async with api.client.post(
        "/api/v1/domains",
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_body_just_under_the_limit_is_read(api: Api, token: str) -> None:
    core = b'{"domain": "shop.acme.com", "app": "shop"}'
    body = core[:-1] + b" " * (MAX_BODY - len(core)) + b"}"
    assert len(body) == MAX_BODY
    reply = await api.call(
        "POST",
        "/api/v1/domains",
        token=token,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 201


async def test_unknown_routes_and_methods_answer_json(api: Api, token: str) -> None:
    missing = await api.call("GET", "/api/v1/nothing", token=token)
    assert missing.status == 404
    assert missing.code == "NOT_FOUND"
    wrong = await api.call("PUT", "/api/v1/domains", token=token)
    assert wrong.status == 405
    assert wrong.code == "METHOD_NOT_ALLOWED"
    assert set(wrong.headers["Allow"].split(",")) >= {"GET", "POST"}
    patch = await api.call("PATCH", "/api/v1/domains/shop.acme.com", token=token)
    assert patch.status == 405


async def test_the_api_listener_does_not_serve_the_gate(api: Api) -> None:
    for path in ("/tls-ask?domain=shop.acme.com", "/route", "/metrics", "/readyz"):
        reply = await api.call("GET", path)
        assert reply.status == 404, path
        assert reply.code == "NOT_FOUND"


FUZZ_NAMES = [
    "\udcff.com",
    "%",
    "..",
    ".",
    "\\",
    "a" * 300,
    "\u212a.acme.com",
    "\uff53\uff48\uff4f\uff50\uff0e\uff41\uff43\uff4d\uff45\uff0e\uff43\uff4f\uff4d",
    "shop\u3002acme\u3002com",
    "xn--.com",
    "xn--a.com",
    "xn--bcher-kva.xn--",
    "\U0010ffff.com",
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z." * 10 + "com",
    "ß.de",
    "İ.com",
    "\u0660.com",
    "a\u0301.com",
    '"quoted".com',
    "{app}.com",
    "shop.acme.com" + "\u0000" * 10,
]


async def test_no_input_produces_a_server_error(api: Api, token: str) -> None:
    """A sweep of odd names, apps and queries across every endpoint: all answered 4xx JSON."""
    replies = []
    for name in FUZZ_NAMES:
        for app in ("shop", name, 0, {"x": 1}):
            replies.append(await attach(api, token, {"domain": name, "app": app}))
        replies.append(await attach(api, token, {"domain": "ok.acme.com", "app": name}))
        replies.append(
            await api.call("GET", "/api/v1/domains", token=token, params={"cursor": name})
        )
        replies.append(await api.call("GET", "/api/v1/domains", token=token, params={"app": name}))
    for reply in replies:
        assert reply.status < 500, reply
        if reply.status >= 400:
            assert reply.code is not None, reply
    # The path: raw bytes percent-encoded, so every name reaches the handler.
    for name in FUZZ_NAMES:
        quoted = "".join(f"%{b:02X}" for b in name.encode("utf-8", "surrogatepass"))
        for method, suffix in (
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/verify"),
            ("GET", "/events"),
        ):
            reply = await api.call(method, f"/api/v1/domains/{quoted}{suffix}", token=token)
            assert reply.status < 500, (name, method, suffix, reply)
            if reply.status >= 400:
                assert reply.code is not None, reply


async def test_header_bytes_that_are_not_utf8_are_refused_not_crashed(api: Api, token: str) -> None:
    cases = [
        (b"Authorization: Bearer \xff\xfe", b"401 "),
        (b"Authorization: Bearer dgt_\xc3\xa9", b"401 "),
        (
            b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\nX-Domaingate-Tenant: \xff\xfe",
            b"400 ",
        ),
        (
            b"Authorization: Bearer " + token.encode() + b"\r\nX-Domaingate-Tenant: \xff",
            b"400 ",
        ),
    ]
    for header, status in cases:
        _, answer = await raw_http(
            api.client,
            b"GET /api/v1/domains HTTP/1.1\r\nHost: api\r\n"
            + header
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
        assert b'"error"' in answer
