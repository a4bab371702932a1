"""Who holds a hostname: several unproven claims but one proven one, the 48 h cool-down after the
removal of a proven claim, the per-tenant quota."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import Api, ApiFactory, set_status, sql

COOLDOWN = 48 * 3600


def prove(db: Path | str, hostname: str, at: float, tenant: str | None = None) -> None:
    """Mark a live claim verified (as a passing check does), through a second connection."""
    where = " AND tenant_id = (SELECT id FROM tenants WHERE name = ?)" if tenant else ""
    sql(
        db,
        "UPDATE domains SET status = 'verified', verified_at = ? WHERE hostname = ?"
        f" AND status != 'removed'{where}",
        (at, hostname, *((tenant,) if tenant else ())),
    )


@pytest.mark.parametrize("status", ["verified", "active", "expiring"])
async def test_a_proven_hostname_cannot_be_attached_by_another_tenant(
    api: Api, status: str
) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", status)
    for spelling in ("shop.acme.com", "SHOP.acme.com.", " shop.ACME.com "):
        reply = await api.post_domain(globex, spelling, app="other")
        assert reply.status == 409, (status, spelling)
        assert reply.code == "HOSTNAME_ALREADY_REGISTERED"
    # The holder's domain is untouched.
    shown = await api.call("GET", "/api/v1/domains/shop.acme.com", token=acme)
    assert shown.body["app"] == "shop"
    assert shown.body["status"] == status


@pytest.mark.parametrize("status", ["pending", "verified", "active", "expiring", "failed"])
async def test_a_tenant_holds_one_claim_per_name(api: Api, status: str) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", status)
    reply = await api.post_domain(acme, "Shop.Acme.Com.", app="web")
    assert reply.status == 409
    assert reply.code == "HOSTNAME_ALREADY_REGISTERED"


@pytest.mark.parametrize("status", ["pending", "failed"])
async def test_an_unproven_claim_holds_nobody_back(api: Api, status: str) -> None:
    """The attack: mallory attaches the name first and never proves it; the owner attaches
    it anyway."""
    mallory = await api.tenant("mallory")
    owner = await api.tenant("owner")
    await api.attach(mallory, "shop.acme.com", app="squat")
    set_status(api.db_target, "shop.acme.com", status)
    claim = await api.attach(owner, "shop.acme.com", app="shop")
    assert claim["tenant"] == "owner"
    assert claim["status"] == "pending"
    # Each tenant sees its own claim, with its own token.
    mine = await api.call("GET", "/api/v1/domains/shop.acme.com", token=mallory)
    assert mine.body["status"] == status
    assert mine.body["txt_record"]["value"] != claim["txt_record"]["value"]


async def test_removed_hostname_is_free_to_its_old_tenant_at_once(api: Api) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "shop.acme.com")
    prove(api.db_target, "shop.acme.com", api.clock())
    assert (await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)).status == 204
    again = await api.attach(acme, "shop.acme.com", app="web")
    assert again["status"] == "pending"
    assert again["app"] == "web"


async def test_cooldown_keeps_others_out_for_48_hours(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    prove(api.db_target, "shop.acme.com", api.clock())
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
    # Once globex proves it, acme is the one kept out.
    prove(api.db_target, "shop.acme.com", api.clock())
    reply = await api.post_domain(acme, "shop.acme.com")
    assert reply.code == "HOSTNAME_ALREADY_REGISTERED"


async def test_cooldown_runs_from_the_latest_removal_of_a_proven_claim(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    prove(api.db_target, "shop.acme.com", api.clock())
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
    api.clock.advance(COOLDOWN - 10)
    await api.attach(acme, "shop.acme.com")
    prove(api.db_target, "shop.acme.com", api.clock())
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
    api.clock.advance(20)
    reply = await api.post_domain(globex, "shop.acme.com")
    assert reply.code == "HOSTNAME_COOLDOWN_ACTIVE"
    assert reply.body["error"]["retry_after"] == COOLDOWN - 20


async def test_detaching_an_unproven_claim_imposes_no_cooldown(api: Api) -> None:
    """The attack: mallory attaches the owner's name and detaches it at once, to keep the owner
    out for 48 hours."""
    mallory = await api.tenant("mallory")
    owner = await api.tenant("owner")
    for status in ("pending", "failed"):
        await api.attach(mallory, "shop.acme.com", app="squat")
        set_status(api.db_target, "shop.acme.com", status)
        reply = await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=mallory)
        assert reply.status == 204
        claim = await api.attach(owner, "shop.acme.com", app="shop")
        assert claim["tenant"] == "owner"
        await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=owner)


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


async def test_concurrent_attaches_of_one_name_make_one_claim_per_tenant(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    for token in (acme, globex):
        await api.register_if_free(token, await api.default_app(token))
    replies = await asyncio.gather(
        *(api.post_domain(token, "race.example.org") for token in (acme, globex) * 5)
    )
    assert sorted(r.status for r in replies) == [201, 201] + [409] * 8
    assert {r.code for r in replies if r.status == 409} == {"HOSTNAME_ALREADY_REGISTERED"}
    assert {r.body["tenant"] for r in replies if r.status == 201} == {"acme", "globex"}
