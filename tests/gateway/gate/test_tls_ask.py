"""GET /tls-ask: 200 exactly for verified/active/expiring names, 403 for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from tests.conftest import (
    Api,
    Client,
    both_backends,
    gate_client,
    gate_synced,
    make_settings,
    raw_get,
    set_status,
    sql,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


ALLOWED = ("verified", "active", "expiring")
DENIED = ("pending", "failed", "removed")


async def ask(internal: Client, name: str) -> int:
    async with internal.get("/tls-ask", params={"domain": name}) as response:
        assert response.content_type == "text/plain"
        return response.status


@pytest.fixture
async def shop(api: Api) -> Api:
    """shop.acme.com (app shop), k.acme.com and shop.bücher.de, all verified and seen by the
    gate; other.acme.com pending."""
    token = await api.tenant("acme")
    for name in ("shop.acme.com", "k.acme.com", "shop.bücher.de", "other.acme.com"):
        await api.attach(token, name)
    for name in ("shop.acme.com", "k.acme.com", "shop.xn--bcher-kva.de"):
        set_status(api.db_target, name, "verified")
    await gate_synced(api)
    return api


@pytest.mark.parametrize("status", ALLOWED + DENIED)
async def test_answer_follows_the_status(api: Api, internal: Client, status: str) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", status)
    await gate_synced(api)
    assert await ask(internal, "shop.acme.com") == (200 if status in ALLOWED else 403)


async def test_unknown_names_are_denied(shop: Api, internal: Client) -> None:
    for name in ("unknown.example.org", "acme.com", "x.shop.acme.com", "hop.acme.com"):
        assert await ask(internal, name) == 403, name
    assert await ask(internal, "shop.acme.com") == 200


RAW_ASKS: list[tuple[bytes, int]] = [
    (b"/tls-ask?domain=shop.acme.com", 200),
    (b"/tls-ask?domain=SHOP.ACME.COM", 200),
    (b"/tls-ask?domain=Shop.Acme.Com.", 200),
    (b"/tls-ask?domain=shop.acme.com.", 200),
    (b"/tls-ask?domain=shop%2Eacme.com", 200),  # one URL decoding is the transport's
    (b"/tls-ask?domain=shop.xn--bcher-kva.de", 200),
    (b"/tls-ask?domain=k.acme.com", 200),
    (b"/tls-ask", 403),
    (b"/tls-ask?", 403),
    (b"/tls-ask?domain", 403),
    (b"/tls-ask?domain=", 403),
    (b"/tls-ask?Domain=shop.acme.com", 403),
    (b"/tls-ask?name=shop.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com&domain=shop.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com&domain=unknown.example.org", 403),
    (b"/tls-ask?domain=shop.acme.com..", 403),
    (b"/tls-ask?domain=.shop.acme.com", 403),
    (b"/tls-ask?domain=shop..acme.com", 403),
    (b"/tls-ask?domain=%20shop.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com%20", 403),
    (b"/tls-ask?domain=shop.acme.com+", 403),
    (b"/tls-ask?domain=shop%20.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com%09", 403),
    (b"/tls-ask?domain=shop.acme.com%0A", 403),
    (b"/tls-ask?domain=shop.acme.com%00", 403),
    (b"/tls-ask?domain=%E2%84%AA.acme.com", 403),  # KELVIN SIGN, lower() gives 'k'
    (b"/tls-ask?domain=%E2%84%AA.ACME.COM", 403),
    (b"/tls-ask?domain=shop.b%C3%BCcher.de", 403),  # the U-label of an allowed name
    (b"/tls-ask?domain=shop.acme.com%C2%A0", 403),
    (b"/tls-ask?domain=shop%EF%BC%8Eacme%EF%BC%8Ecom", 403),  # full-width dots
    (b"/tls-ask?domain=shop%E3%80%82acme%E3%80%82com", 403),  # ideographic full stops
    (b"/tls-ask?domain=%EF%BD%93%EF%BD%88%EF%BD%8F%EF%BD%90.acme.com", 403),  # full-width
    (b"/tls-ask?domain=shop%252Eacme.com", 403),  # '%2E' left after decoding
    (b"/tls-ask?domain=shop.acme%252ecom", 403),
    (b"/tls-ask?domain=shop%25.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com:443", 403),
    (b"/tls-ask?domain=shop.acme.com%3A443", 403),
    (b"/tls-ask?domain=shop.acme.com:", 403),
    (b"/tls-ask?domain=shop.acme.com/", 403),
    (b"/tls-ask?domain=*.acme.com", 403),
    (b"/tls-ask?domain=shop.acme.com%ff", 403),
    (b"/tls-ask?domain=" + b"a" * 8000, 403),
]


async def test_raw_query_strings(shop: Api, internal: Client) -> None:
    """Each request goes out byte for byte as written: the name as Caddy would send it, or
    malformed. Only the first seven (the allowed names, lower-cased, one trailing dot) pass."""
    answers = [(target, await raw_get(internal, target)) for target, _ in RAW_ASKS]
    wrong = [
        (target[:80], got, expected)
        for (target, got), (_, expected) in zip(answers, RAW_ASKS, strict=True)
        if got != expected
    ]
    assert wrong == []
    assert sum(1 for _, status in RAW_ASKS if status == 200) == 7


async def test_the_gate_does_not_answer_other_methods_with_200(shop: Api, internal: Client) -> None:
    async with internal.post("/tls-ask", params={"domain": "shop.acme.com"}) as response:
        assert response.status == 405


async def test_a_new_app_on_the_same_database_loads_allowed_names_at_start(
    shop: Api, aiohttp_client: AiohttpClient
) -> None:
    fresh: Client = await aiohttp_client(
        create_app(make_settings(shop.db_target), clock=shop.clock)
    )
    gate: Client = await gate_client(aiohttp_client, fresh.app)
    for name, expected in (
        ("shop.acme.com", 200),
        ("k.acme.com", 200),
        ("shop.xn--bcher-kva.de", 200),
        ("other.acme.com", 403),
    ):
        async with gate.get("/tls-ask", params={"domain": name}) as response:
            assert response.status == expected, name


async def test_an_old_removed_row_does_not_revoke_a_newer_claim(api: Api, internal: Client) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    assert (await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=token)).status == 204
    await api.attach(token, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", "verified")
    await gate_synced(api)
    assert await ask(internal, "shop.acme.com") == 200
    # Another process touches the old, removed row (the reconciler's clean-up, say).
    sql(
        api.db_target,
        "UPDATE domains SET status = 'removed' WHERE hostname = 'shop.acme.com'"
        " AND status = 'removed'",
    )
    await gate_synced(api)
    assert await ask(internal, "shop.acme.com") == 200
