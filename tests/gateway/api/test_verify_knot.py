"""POST …/verify against a real knot DNS server on loopback, and its rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from domaingate.settings import Listen
from domaingate.times import rfc3339
from tests.conftest import EDGE_IPV4, EDGE_IPV6, T0, Api, ApiFactory, gate_client, set_status, sql
from tests.support.knot import Knot

pytestmark = pytest.mark.knot

PLATFORM = "apps.test"
ZONES = {
    PLATFORM: f"shop A {EDGE_IPV4}\n",
    "acme.test": (
        "good CNAME shop.apps.test.\n"
        "wrong CNAME elsewhere.acme.test.\n"
        "flat A 198.51.100.7\n"
        "a CNAME shop.apps.test.\n"
        "b CNAME shop.apps.test.\n"
        "c CNAME shop.apps.test.\n"
    ),
}


@pytest.fixture(scope="module")
def knot() -> Iterator[Knot]:
    with Knot(ZONES) as server:
        yield server


@pytest.fixture
async def api(api_factory: ApiFactory, knot: Knot) -> Api:
    return await api_factory(resolvers=(knot.listen,), platform_zone=PLATFORM, dns_timeout=3.0)


@pytest.fixture
async def gate(aiohttp_client: AiohttpClient, api: Api) -> Any:
    client: TestClient[Any, Any] = await gate_client(aiohttp_client, api.app)
    return client


async def verify(api: Api, token: str, name: str) -> Any:
    return await api.call("POST", f"/api/v1/domains/{name}/verify", token=token)


async def asks(gate: Any, name: str) -> int:
    async with gate.get("/tls-ask", params={"domain": name}) as response:
        status: int = response.status
        return status


def codes(checks: list[dict[str, Any]]) -> dict[str, str | None]:
    return {check["check"]: check["code"] for check in checks}


async def test_a_correct_cname_verifies_and_the_gate_allows_at_once(api: Api, gate: Any) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "good.acme.test")
    assert await asks(gate, "good.acme.test") == 403
    api.clock.advance(30)
    reply = await verify(api, token, "good.acme.test")
    assert reply.status == 200, reply
    body = reply.body
    assert set(body) == {
        "verified",
        "status",
        "checks",
        "last_check_error",
        "last_checked_at",
        "now",
    }
    assert body["verified"] is True
    assert body["status"] == "verified"
    assert body["last_check_error"] is None
    assert body["last_checked_at"] == rfc3339(T0 + 30)
    assert body["now"] == rfc3339(T0 + 30)
    assert codes(body["checks"]) == {"cname": None, "caa": None, "ns": None}
    assert all(check["ok"] and check["message"] for check in body["checks"])
    # Same process, no waiting for the watcher.
    assert await asks(gate, "good.acme.test") == 200
    async with gate.get("/route", headers={"X-Forwarded-Host": "good.acme.test:443"}) as route:
        assert route.status == 200
        assert route.headers["X-Domaingate-App"] == "shop"

    shown = await api.call("GET", "/api/v1/domains/good.acme.test", token=token)
    assert shown.body["status"] == "verified"
    assert shown.body["verified_at"] == rfc3339(T0 + 30)
    assert shown.body["last_checked_at"] == rfc3339(T0 + 30)
    assert shown.body["next_check_at"] == rfc3339(T0 + 30 + 3600)  # drift recheck, hourly
    assert shown.body["failure_count"] == 0
    events = await api.call("GET", "/api/v1/domains/good.acme.test/events", token=token)
    assert [(e["type"], e["from_status"], e["to_status"]) for e in events.body["events"]] == [
        ("domain.created", None, "pending"),
        ("domain.verified", "pending", "verified"),
    ]
    # Verifying a verified domain again keeps it verified.
    again = await verify(api, token, "good.acme.test")
    assert again.body["verified"] is True
    assert again.body["status"] == "verified"


async def test_a_wrong_cname_reports_the_target_and_stays_pending(api: Api, gate: Any) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "wrong.acme.test")
    reply = await verify(api, token, "wrong.acme.test")
    assert reply.status == 200
    body = reply.body
    assert body["verified"] is False
    assert body["status"] == "pending"
    assert codes(body["checks"])["cname"] == "cname_wrong_target"
    assert body["last_check_error"]["code"] == "cname_wrong_target"
    message = body["last_check_error"]["message"]
    assert "elsewhere.acme.test" in message and "shop.apps.test" in message
    shown = await api.call("GET", "/api/v1/domains/wrong.acme.test", token=token)
    assert shown.body["status"] == "pending"
    assert shown.body["last_check_error"] == body["last_check_error"]
    assert shown.body["failure_count"] == 1
    assert await asks(gate, "wrong.acme.test") == 403


@pytest.mark.parametrize(
    ("name", "code"),
    [("missing.acme.test", "nxdomain"), ("flat.acme.test", "cname_missing")],
)
async def test_other_findings_reach_last_check_error(api: Api, name: str, code: str) -> None:
    token = await api.tenant("acme")
    await api.attach(token, name)
    reply = await verify(api, token, name)
    assert reply.body["verified"] is False
    assert reply.body["status"] == "pending"
    assert reply.body["last_check_error"]["code"] == code


async def test_an_apex_with_txt_and_edge_addresses_verifies(
    api: Api, gate: Any, knot: Knot
) -> None:
    token = await api.tenant("acme")
    body = await api.attach(token, "apex.test")
    txt = body["txt_record"]
    knot.set_zone("apex.test", f"@ A {EDGE_IPV4}\n@ AAAA {EDGE_IPV6}\n_domaingate TXT wrong\n")
    wrong = await verify(api, token, "apex.test")
    assert wrong.body["verified"] is False
    assert wrong.body["last_check_error"]["code"] == "token_mismatch"
    knot.set_zone(
        "apex.test", f'@ A {EDGE_IPV4}\n@ AAAA {EDGE_IPV6}\n_domaingate TXT "{txt["value"]}"\n'
    )
    right = await verify(api, token, "apex.test")
    assert right.body["verified"] is True, right.body
    assert codes(right.body["checks"]) == {"address": None, "txt": None, "caa": None, "ns": None}
    assert await asks(gate, "apex.test") == 200


async def test_require_txt_demands_the_token_for_subdomains(
    api_factory: ApiFactory, knot: Knot
) -> None:
    api = await api_factory(
        resolvers=(knot.listen,), platform_zone=PLATFORM, require_txt=True, dns_timeout=3.0
    )
    token = await api.tenant("acme")
    await api.attach(token, "good.acme.test")
    reply = await verify(api, token, "good.acme.test")
    assert reply.body["verified"] is False
    assert reply.body["last_check_error"]["code"] == "missing_txt"
    assert codes(reply.body["checks"])["cname"] is None


async def test_a_failed_domain_verified_again_goes_pending(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "wrong.acme.test")
    set_status(api.db_target, "wrong.acme.test", "failed")
    api.clock.advance(100)
    reply = await verify(api, token, "wrong.acme.test")
    assert reply.body["verified"] is False
    assert reply.body["status"] == "pending"
    shown = await api.call("GET", "/api/v1/domains/wrong.acme.test", token=token)
    assert shown.body["status"] == "pending"
    # The retry budget starts again: the next check is one fast interval away.
    assert shown.body["next_check_at"] == rfc3339(T0 + 100 + 60)
    events = await api.call("GET", "/api/v1/domains/wrong.acme.test/events", token=token)
    last = events.body["events"][-1]
    assert (last["from_status"], last["to_status"]) == ("failed", "pending")


async def test_a_failed_domain_with_right_dns_verified_again_is_verified(
    api: Api, gate: Any
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "good.acme.test")
    set_status(api.db_target, "good.acme.test", "failed")
    reply = await verify(api, token, "good.acme.test")
    assert reply.body["verified"] is True
    assert reply.body["status"] == "verified"
    assert await asks(gate, "good.acme.test") == 200


async def test_verify_is_limited_to_five_an_hour_per_domain(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "wrong.acme.test")
    for _ in range(5):
        assert (await verify(api, token, "wrong.acme.test")).status == 200
        api.clock.advance(100)
    limited = await verify(api, token, "wrong.acme.test")
    assert limited.status == 429
    assert limited.code == "VERIFY_RATE_LIMITED"
    # The oldest of the five, at T0, leaves the window at T0 + 3600; it is now T0 + 500.
    assert limited.headers["Retry-After"] == "3100"
    assert limited.body["error"]["retry_after"] == 3100
    # A refused request is not counted, and nothing was checked.
    checked = await api.call("GET", "/api/v1/domains/wrong.acme.test", token=token)
    assert checked.body["last_checked_at"] == rfc3339(T0 + 400)
    api.clock.advance(3099)
    assert (await verify(api, token, "wrong.acme.test")).status == 429
    api.clock.advance(1)
    assert (await verify(api, token, "wrong.acme.test")).status == 200
    assert (await verify(api, token, "wrong.acme.test")).status == 429


async def test_verify_is_limited_to_ten_an_hour_per_tenant(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    for name in ("a.acme.test", "b.acme.test", "c.acme.test"):
        await api.attach(acme, name)
    await api.attach(globex, "good.acme.test")
    for name in ("a.acme.test", "b.acme.test"):
        for _ in range(5):
            assert (await verify(api, acme, name)).status == 200
    limited = await verify(api, acme, "c.acme.test")
    assert limited.status == 429
    assert limited.code == "VERIFY_RATE_LIMITED"
    assert limited.headers["Retry-After"] == "3600"
    assert "tenant" in limited.body["error"]["message"]
    # Another tenant has its own allowance.
    assert (await verify(api, globex, "good.acme.test")).status == 200
    api.clock.advance(3600)
    assert (await verify(api, acme, "c.acme.test")).status == 200


async def test_verify_of_an_unknown_or_foreign_domain_costs_no_allowance(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(globex, "good.acme.test")
    for _ in range(12):
        reply = await verify(api, acme, "good.acme.test")
        assert reply.status == 404
    assert sql(api.db_target, "SELECT count(*) FROM verify_attempts") == [(0,)]


async def test_a_silent_resolver_never_unverifies_a_verified_domain(
    api_factory: ApiFactory, blackhole: Listen
) -> None:
    api = await api_factory(resolvers=(blackhole,), platform_zone=PLATFORM, dns_timeout=0.3)
    token = await api.tenant("acme")
    await api.attach(token, "good.acme.test")
    set_status(api.db_target, "good.acme.test", "verified")
    reply = await verify(api, token, "good.acme.test")
    assert reply.status == 200
    assert reply.body["verified"] is True
    assert reply.body["status"] == "verified"
    assert "dns_timeout" in codes(reply.body["checks"]).values()


async def test_a_status_change_during_the_check_is_invalid_state(
    api_factory: ApiFactory, blackhole: Listen
) -> None:
    api = await api_factory(resolvers=(blackhole,), platform_zone=PLATFORM, dns_timeout=0.5)
    token = await api.tenant("acme")
    await api.attach(token, "good.acme.test")
    request = asyncio.create_task(verify(api, token, "good.acme.test"))
    # The allowance is counted just before the check starts; the check waits on the silent
    # resolver for 0.5 s, while another process (the reconciler, say) moves the domain.
    deadline = asyncio.get_running_loop().time() + 2
    while sql(api.db_target, "SELECT count(*) FROM verify_attempts") == [(0,)]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    set_status(api.db_target, "good.acme.test", "failed")
    reply = await request
    assert reply.status == 409
    assert reply.code == "INVALID_STATE"
    shown = await api.call("GET", "/api/v1/domains/good.acme.test", token=token)
    assert shown.body["status"] == "failed"
    assert shown.body["last_checked_at"] is None
