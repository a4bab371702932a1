"""Who holds a hostname: one live claim, the 48 h cool-down after removal, the per-tenant quota."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api, ApiFactory, set_status

COOLDOWN = 48 * 3600


@pytest.mark.parametrize("status", ["pending", "verified", "active", "expiring", "failed"])
async def test_a_live_hostname_cannot_be_attached_again_by_anyone(api: Api, status: str) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", status)
    for token in (acme, globex):
        for spelling in ("shop.acme.com", "SHOP.acme.com.", " shop.ACME.com "):
            reply = await api.post_domain(token, spelling, app="other")
            assert reply.status == 409, (status, spelling)
            assert reply.code == "HOSTNAME_ALREADY_REGISTERED"
    # The holder's domain is untouched.
    shown = await api.call("GET", "/api/v1/domains/shop.acme.com", token=acme)
    assert shown.body["app"] == "shop"
    assert shown.body["status"] == status


async def test_removed_hostname_is_free_to_its_old_tenant_at_once(api: Api) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com")
    assert (await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)).status == 204
    again = await api.attach(acme, "shop.acme.com", app="web")
    assert again["status"] == "pending"
    assert again["app"] == "web"


async def test_cooldown_keeps_others_out_for_48_hours(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)

    reply = await api.post_domain(globex, "shop.acme.com")
    assert reply.status == 409
    assert reply.code == "HOSTNAME_COOLDOWN_ACTIVE"
    assert reply.body["error"]["retry_after"] == COOLDOWN
    assert reply.headers["Retry-After"] == str(COOLDOWN)

    api.clock.advance(3600)
    reply = await api.post_domain(globex, "Shop.Acme.Com")
    assert reply.code == "HOSTNAME_COOLDOWN_ACTIVE"
    assert reply.body["error"]["retry_after"] == COOLDOWN - 3600

    api.clock.advance(COOLDOWN - 3600 - 1)
    reply = await api.post_domain(globex, "shop.acme.com")
    assert reply.code == "HOSTNAME_COOLDOWN_ACTIVE"
    assert reply.body["error"]["retry_after"] == 1

    api.clock.advance(1)
    taken = await api.attach(globex, "shop.acme.com", app="site")
    assert taken["tenant"] == "globex"
    assert taken["app"] == "site"
    # Now globex holds it, and acme is the one kept out.
    reply = await api.post_domain(acme, "shop.acme.com")
    assert reply.code == "HOSTNAME_ALREADY_REGISTERED"


async def test_cooldown_runs_from_the_latest_removal(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
    api.clock.advance(COOLDOWN - 10)
    await api.attach(acme, "shop.acme.com")
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
    api.clock.advance(20)
    reply = await api.post_domain(globex, "shop.acme.com")
    assert reply.code == "HOSTNAME_COOLDOWN_ACTIVE"
    assert reply.body["error"]["retry_after"] == COOLDOWN - 20


async def test_quota_counts_live_domains_per_tenant(api_factory: ApiFactory) -> None:
    api = await api_factory(max_domains_per_tenant=3)
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    for i in range(3):
        await api.attach(acme, f"d{i}.acme.com")
    set_status(api.db_target, "d1.acme.com", "failed")  # every live status counts
    reply = await api.post_domain(acme, "d3.acme.com")
    assert reply.status == 422
    assert reply.code == "QUOTA_EXCEEDED"
    assert "3" in reply.body["error"]["message"]
    # Nothing was stored.
    missing = await api.call("GET", "/api/v1/domains/d3.acme.com", token=acme)
    assert missing.status == 404
    # Another tenant has its own quota.
    await api.attach(globex, "d0.globex.com")
    # A removed domain frees its slot.
    await api.call("DELETE", "/api/v1/domains/d0.acme.com", token=acme)
    await api.attach(acme, "d3.acme.com")
    reply = await api.post_domain(acme, "d4.acme.com")
    assert reply.code == "QUOTA_EXCEEDED"


async def test_default_quota_is_ten(api: Api) -> None:
    acme = await api.tenant("acme")
    for i in range(10):
        await api.attach(acme, f"d{i}.acme.com")
    reply = await api.post_domain(acme, "d10.acme.com")
    assert reply.status == 422
    assert reply.code == "QUOTA_EXCEEDED"


async def test_conflicts_are_reported_before_the_quota(api_factory: ApiFactory) -> None:
    api = await api_factory(max_domains_per_tenant=1)
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com")
    reply = await api.post_domain(acme, "shop.acme.com")
    assert reply.code == "HOSTNAME_ALREADY_REGISTERED"


async def test_concurrent_attaches_of_one_name_make_one_claim(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    replies = await asyncio.gather(
        *(api.post_domain(token, "race.example.org") for token in (acme, globex) * 5)
    )
    assert sorted(r.status for r in replies) == [201] + [409] * 9
    assert {r.code for r in replies if r.status == 409} == {"HOSTNAME_ALREADY_REGISTERED"}
