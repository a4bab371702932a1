"""Two edges write at the same moment, and every read-then-write of the store keeps its rule.

Each edge is a `Database` of its own (its own pool on PostgreSQL, its own writer connection on
SQLite), as two gateway processes on two nodes have. A barrier starts both writes together, many
rounds over: on PostgreSQL the writes lock only what they name (`domaingate.store.scopes`), so
a write that named too little would let both slip under a rule here. SQLite, one writer at a
time, must give the same answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import TypeVar, cast

import pytest

from domaingate import hostnames
from domaingate.dns.checker import DnsChecker
from domaingate.errors import (
    AppInUse,
    DomaingateError,
    HostnameAlreadyRegistered,
    HostnameCooldownActive,
    InvalidApp,
    QuotaExceeded,
    VerifyRateLimited,
)
from domaingate.lifecycle.claims import HOSTNAME_TAKEN
from domaingate.lifecycle.limits import VERIFY_LIMIT_PER_DOMAIN, VERIFY_LIMIT_PER_TENANT
from domaingate.models import Domain, Tenant
from domaingate.states import Status
from domaingate.store import apps, leases, limits, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.checks import apply_checks
from domaingate.verification import verify_now
from tests.conftest import FakeClock, both_backends, make_settings, target
from tests.hardening.test_claim_race import BarrierChecker, claims_on, passing_checks

ROUNDS = 20
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


@pytest.fixture
async def edges(db_target: Path | str) -> AsyncIterator[tuple[Database, Database]]:
    async with (
        await open_database(target(db_target)) as first,
        await open_database(target(db_target)) as second,
    ):
        yield first, second


async def together(*writes: Awaitable[T]) -> list[T | DomaingateError]:
    """Run `writes` started at the same moment; each one's result or refusal."""
    barrier = asyncio.Barrier(len(writes))

    async def run(write: Awaitable[T]) -> T | DomaingateError:
        await barrier.wait()
        try:
            return await write
        except DomaingateError as exc:
            return exc

    return list(await asyncio.gather(*(run(write) for write in writes)))


def policy(**overrides: int) -> domain_store.AttachPolicy:
    values = {"quota": 1000, "hourly_attaches": 1000, **overrides}
    return domain_store.AttachPolicy(require_txt=False, first_check_in=60, **values)


async def attach(
    db: Database,
    tenant: Tenant,
    name: str,
    app: str,
    clock: FakeClock,
    rules: domain_store.AttachPolicy | None = None,
) -> Domain:
    host = hostnames.parse(name, ("apps.example.net",))
    return await domain_store.attach(db, tenant, host, app, rules or policy(), clock)


async def two_tenants(db: Database, clock: FakeClock) -> tuple[Tenant, Tenant]:
    acme, _ = await tenants.create(db, "acme", clock)
    globex, _ = await tenants.create(db, "globex", clock)
    await apps.put(db, acme, "shop", None, clock)
    await apps.put(db, globex, "store", None, clock)
    return acme, globex


def kinds(results: Sequence[object]) -> list[str]:
    return sorted("ok" if not isinstance(r, DomaingateError) else type(r).__name__ for r in results)


async def test_two_tenants_attaching_one_name_while_one_verifies(
    edges: tuple[Database, Database],
) -> None:
    """Acme verifies its claim on one edge while Globex attaches the name on another: Globex is
    refused, or its claim comes first and the verification fails it. Never a live rival claim
    left standing beside a held name."""
    first, second = edges
    clock = FakeClock()
    settings = make_settings(first.target)
    acme, globex = await two_tenants(first, clock)
    for round_ in range(ROUNDS):
        name = f"race{round_}.example.org"
        mine = await attach(first, acme, name, "shop", clock)
        checker = BarrierChecker(1)
        verified, attached = await together(
            verify_now(first, cast(DnsChecker, checker), settings, mine, clock),
            attach(second, globex, name, "store", clock),
        )
        assert isinstance(verified, tuple)
        assert verified[0].status is Status.VERIFIED
        found = claims_on(first.target, name)
        if isinstance(attached, DomaingateError):
            assert isinstance(attached, HostnameAlreadyRegistered), attached
            assert found == [("acme", "verified", None)]
        else:
            assert found == [("acme", "verified", None), ("globex", "failed", HOSTNAME_TAKEN)]


async def test_a_batch_and_a_verify_now_of_rival_claims(
    edges: tuple[Database, Database],
) -> None:
    """The reconciler's batch verifies Globex's claim while Acme's verify-now runs on another
    edge: one of them holds the name, the other's claim fails `hostname_taken`."""
    first, second = edges
    clock = FakeClock()
    settings = make_settings(first.target)
    acme, globex = await two_tenants(first, clock)
    for round_ in range(ROUNDS):
        name = f"rival{round_}.example.org"
        mine = await attach(first, acme, name, "shop", clock)
        theirs = await attach(second, globex, name, "store", clock)
        outcomes = await passing_checks([theirs], settings, clock)
        checker = cast(DnsChecker, BarrierChecker(1))
        await together(
            verify_now(first, checker, settings, mine, clock), apply_checks(second, outcomes)
        )
        found = sorted(claims_on(first.target, name), key=lambda claim: claim[1])
        assert [status for _, status, _ in found] == ["failed", "verified"], found
        assert found[0][2] == HOSTNAME_TAKEN


async def test_a_name_let_go_while_another_tenant_attaches_it(
    edges: tuple[Database, Database],
) -> None:
    """Globex detaches a name it held while Acme attaches it: Acme is refused either way, as
    the holder or as the cool-down answers."""
    first, second = edges
    clock = FakeClock()
    settings = make_settings(first.target)
    acme, globex = await two_tenants(first, clock)
    checker = cast(DnsChecker, BarrierChecker(1))
    for round_ in range(ROUNDS):
        name = f"cool{round_}.example.org"
        theirs = await attach(second, globex, name, "store", clock)
        theirs, _ = await verify_now(second, checker, settings, theirs, clock)
        removed, attached = await together(
            domain_store.remove(second, theirs, clock), attach(first, acme, name, "shop", clock)
        )
        assert not isinstance(removed, DomaingateError)
        assert isinstance(attached, HostnameAlreadyRegistered | HostnameCooldownActive), attached


@pytest.mark.parametrize("per", ["tenant", "app"])
async def test_a_quota_filled_from_two_edges(edges: tuple[Database, Database], per: str) -> None:
    """One place left under the quota, two attaches of different names at once: one gets it."""
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    await apps.put(first, acme, "blog", None, clock)
    for round_ in range(ROUNDS):
        live = round_ + 1  # each round leaves one more domain live
        rules = policy(quota=live) if per == "tenant" else policy(app_quota=live)
        results = await together(
            attach(first, acme, f"a{round_}.example.org", "shop", clock, rules),
            attach(second, acme, f"b{round_}.example.org", "shop", clock, rules),
        )
        assert kinds(results) == ["QuotaExceeded", "ok"], results
        assert all(isinstance(r, Domain | QuotaExceeded) for r in results)
        if per == "app":
            # Another app of the tenant's has its own count: it still takes one.
            await attach(first, acme, f"c{round_}.example.org", "blog", clock, rules)


async def test_the_attach_rate_limit_from_two_edges(edges: tuple[Database, Database]) -> None:
    """One attach left in the tenant's hour, two at once on two edges: one is refused."""
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    for round_ in range(ROUNDS):
        rules = policy(hourly_attaches=round_ + 1)
        results = await together(
            attach(first, acme, f"a{round_}.example.org", "shop", clock, rules),
            attach(second, acme, f"b{round_}.example.org", "shop", clock, rules),
        )
        assert kinds(results) == ["AttachRateLimited", "ok"], results


@pytest.mark.parametrize("per", ["domain", "tenant"])
async def test_the_verify_rate_limits_from_two_edges(
    edges: tuple[Database, Database], per: str
) -> None:
    """One verification left in the window, two requests at once: one is refused."""
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    limit = VERIFY_LIMIT_PER_DOMAIN if per == "domain" else VERIFY_LIMIT_PER_TENANT
    for round_ in range(ROUNDS):
        # Per domain: one name's requests; per tenant: each on a name of its own.
        def name(i: int, round_: int = round_) -> str:
            return f"v{round_}.example.org" if per == "domain" else f"v{round_}-{i}.example.org"

        for i in range(limit - 1):
            await limits.consume_verify_allowance(first, acme.id, name(i), clock)
        results = await together(
            limits.consume_verify_allowance(first, acme.id, name(limit), clock),
            limits.consume_verify_allowance(second, acme.id, name(limit + 1), clock),
        )
        assert kinds(results) == ["VerifyRateLimited", "ok"], results
        refused = next(r for r in results if isinstance(r, VerifyRateLimited))
        assert f"for this {per};" in str(refused)
        clock.advance(3601)  # the next round starts with an empty window


async def test_an_app_removed_while_a_domain_is_attached_with_it(
    edges: tuple[Database, Database],
) -> None:
    """The platform removes an app on one edge while its tenant attaches a domain with it on
    another: the app goes and the attach is refused, or the domain stays and the removal is
    refused. Never a live domain on an app that is gone."""
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    for round_ in range(ROUNDS):
        app = f"app{round_}"
        await apps.put(first, acme, app, None, clock)
        removed, attached = await together(
            apps.remove(first, acme, app), attach(second, acme, f"{app}.example.org", app, clock)
        )
        if isinstance(removed, DomaingateError):
            assert isinstance(removed, AppInUse), removed
            assert isinstance(attached, Domain)
            assert await apps.get(first, app) is not None
        else:
            assert isinstance(attached, InvalidApp), attached
            assert await apps.get(first, app) is None


async def test_two_reconcilers_taking_a_free_lease(edges: tuple[Database, Database]) -> None:
    first, second = edges
    for round_ in range(ROUNDS):
        name = f"lease{round_}"
        taken = await together(
            leases.take_lease(first, name, "a", 30),
            leases.take_lease(second, name, "b", 30),
        )
        assert sorted(t is None for t in taken) == [False, True], taken
