"""Two tenants verify one name at the same moment: exactly one takes it, the other's claim fails.

Real concurrency, on both backends: each tenant's verification runs through its own `Database`
(its own writer connection, or pool, as two gateway processes would have), both DNS checks finish
together, and their writes contend for SQLite's lock or PostgreSQL's write lock. Whoever commits
first holds the name; the other claim turns failed with `hostname_taken`, with its event and
webhook, in the same transaction as the winner's move; at no moment are two claims on the name
allowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from domaingate import hostnames
from domaingate.dns.checker import DnsChecker, Expectation
from domaingate.dns.findings import CheckReport, Finding
from domaingate.instructions import expectation_for
from domaingate.lifecycle.claims import HOSTNAME_COOLDOWN, HOSTNAME_TAKEN
from domaingate.lifecycle.dns import CheckOutcome, Policy, plan_check
from domaingate.models import Domain, Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import apps, moves, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.checks import apply_checks
from domaingate.verification import verify_now
from tests.conftest import FakeClock, Where, both_backends, make_settings, sql, target

ROUNDS = 12


class BarrierChecker:
    """Every check passes, and none returns before `parties` checks are under way: the writes
    that follow start together."""

    def __init__(self, parties: int) -> None:
        self.barrier = asyncio.Barrier(parties)

    async def check(self, expectation: Expectation) -> CheckReport:
        await self.barrier.wait()
        return CheckReport(
            hostname=expectation.hostname,
            findings=(Finding(check="cname", ok=True, code=None, message="points at the app"),),
            provider=None,
        )


async def claim(db: Database, tenant: Tenant, name: str, app: str, clock: FakeClock) -> Domain:
    policy = domain_store.AttachPolicy(require_txt=False, quota=100, first_check_in=60)
    host = hostnames.parse(name, ("apps.example.net",))
    return await domain_store.attach(db, tenant, host, app, policy, clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


@pytest.fixture
async def two_processes(db_target: Path | str) -> AsyncIterator[tuple[Database, Database]]:
    async with (
        await open_database(target(db_target)) as first,
        await open_database(target(db_target)) as second,
    ):
        yield first, second


async def tenants_with_apps(db: Database, clock: FakeClock) -> tuple[Tenant, Tenant]:
    acme, _ = await tenants.create(db, "acme", clock)
    globex, _ = await tenants.create(db, "globex", clock)
    await apps.put(db, acme, "shop", None, clock)
    await apps.put(db, globex, "store", None, clock)
    return acme, globex


def claims_on(db: Where, name: str) -> list[tuple[str, str, str | None]]:
    return [
        (str(tenant), str(status), code)
        for tenant, status, code in sql(
            db,
            "SELECT t.name, d.status, d.last_check_code FROM domains d"
            " JOIN tenants t ON t.id = d.tenant_id WHERE d.hostname = ? ORDER BY d.id",
            (name,),
        )
    ]


async def passing_checks(
    domains: list[Domain], settings: Settings, clock: FakeClock
) -> list[CheckOutcome]:
    """Each domain's outcome of a check that passes, planned now, as the reconciler batches them."""
    checker = BarrierChecker(1)
    outcomes = []
    for domain in domains:
        report = await checker.check(expectation_for(domain, settings))
        plan = plan_check(domain, report, clock(), Policy())
        outcomes.append(CheckOutcome(domain=domain, plan=plan, now=clock()))
    return outcomes


async def test_two_tenants_verifying_one_name_at_once(
    two_processes: tuple[Database, Database], tmp_path: Path
) -> None:
    first, second = two_processes
    clock = FakeClock()
    settings: Settings = make_settings(first.target)
    acme, globex = await tenants_with_apps(first, clock)
    winners: list[str] = []
    for round_ in range(ROUNDS):
        name = f"race{round_}.example.org"
        mine = await claim(first, acme, name, "shop", clock)
        theirs = await claim(second, globex, name, "store", clock)
        checker = cast(DnsChecker, BarrierChecker(2))
        results = await asyncio.gather(
            verify_now(first, checker, settings, mine, clock),
            verify_now(second, checker, settings, theirs, clock),
        )
        statuses = sorted(domain.status for domain, _report in results)
        assert statuses == [Status.FAILED, Status.VERIFIED], (name, statuses)
        winner = next(domain for domain, _ in results if domain.status is Status.VERIFIED)
        loser = next(domain for domain, _ in results if domain.status is Status.FAILED)
        winners.append(winner.tenant)
        assert loser.last_check_code == HOSTNAME_TAKEN
        assert "another tenant" in (loser.last_check_message or "")
        # The loser's move is an event with its reason, and a webhook to deliver.
        assert sql(
            first.target,
            "SELECT e.from_status, e.to_status, e.reason, o.event_id IS NOT NULL"
            " FROM domain_events e LEFT JOIN webhook_outbox o USING (event_id)"
            " WHERE e.domain_id = ? AND e.type = 'domain.failed'",
            (loser.id,),
        ) == [("pending", "failed", HOSTNAME_TAKEN, 1)]
        assert claims_on(first.target, name).count((winner.tenant, "verified", None)) == 1
    # Both sides won some rounds or not: either way each round had exactly one winner.
    assert len(winners) == ROUNDS


async def test_the_loser_cannot_verify_later(
    two_processes: tuple[Database, Database],
) -> None:
    first, second = two_processes
    clock = FakeClock()
    settings: Settings = make_settings(first.target)
    acme, globex = await tenants_with_apps(first, clock)
    mine = await claim(first, acme, "late.example.org", "shop", clock)
    theirs = await claim(second, globex, "late.example.org", "store", clock)
    await verify_now(first, cast(DnsChecker, BarrierChecker(1)), settings, mine, clock)
    failed = await domain_store.get_by_id(second, theirs.id)
    assert failed.status is Status.FAILED
    # Asking again: DNS right or not, the name stays with its holder.
    again, _ = await verify_now(
        second, cast(DnsChecker, BarrierChecker(1)), settings, failed, clock
    )
    assert again.status is Status.FAILED
    assert again.last_check_code == HOSTNAME_TAKEN


async def test_one_batch_with_both_claims_verifies_only_the_first(
    two_processes: tuple[Database, Database],
) -> None:
    """The reconciler writes many checks in one transaction: two passing checks of one name
    in the same batch make one winner too."""
    db, _ = two_processes
    clock = FakeClock()
    settings = make_settings(db.target)
    acme, globex = await tenants_with_apps(db, clock)
    mine = await claim(db, acme, "batch.example.org", "shop", clock)
    theirs = await claim(db, globex, "batch.example.org", "store", clock)
    outcomes = await passing_checks([mine, theirs], settings, clock)
    assert await apply_checks(db, outcomes) == [True, True]
    assert claims_on(db.target, "batch.example.org") == [
        ("acme", "verified", None),
        ("globex", "failed", HOSTNAME_TAKEN),
    ]


async def test_one_batch_over_many_names_settles_each_as_alone(
    two_processes: tuple[Database, Database],
) -> None:
    """A batch's claims are settled from one read of every name's holders: each name still ends
    as its own rules say, whatever else the batch holds."""
    db, _ = two_processes
    clock = FakeClock()
    settings = make_settings(db.target)
    acme, globex = await tenants_with_apps(db, clock)
    initech, _ = await tenants.create(db, "initech", clock)
    await apps.put(db, initech, "desk", None, clock)
    alone = cast(DnsChecker, BarrierChecker(1))
    # Acme's claims come first: once another tenant holds a name, attaching it is refused.
    free = await claim(db, acme, "free.example.org", "shop", clock)
    free_rival = await claim(db, initech, "free.example.org", "desk", clock)
    held = await claim(db, acme, "held.example.org", "shop", clock)
    cool = await claim(db, acme, "cool.example.org", "shop", clock)
    rivals = await claim(db, acme, "rivals.example.org", "shop", clock)
    await claim(db, globex, "rivals.example.org", "store", clock)
    failing = await claim(db, initech, "rivals.example.org", "desk", clock)
    async with db.write() as conn:
        await moves.transition(
            conn, failing, Status.FAILED, reason="dns_cname_wrong", message="no", now=clock()
        )
    # Globex holds held.example.org; it held cool.example.org and let it go a moment ago.
    for name in ("held.example.org", "cool.example.org"):
        theirs = await claim(db, globex, name, "store", clock)
        theirs, _ = await verify_now(db, alone, settings, theirs, clock)
        assert theirs.status is Status.VERIFIED
    await domain_store.remove(db, await domain_store.get(db, "cool.example.org", globex.id), clock)
    clock.advance(1)
    batch = [
        await domain_store.get_by_id(db, domain.id)
        for domain in (free, held, cool, rivals, free_rival)
    ]
    outcomes = await passing_checks(batch, settings, clock)
    assert await apply_checks(db, outcomes) == [True] * len(batch)
    expected = {
        "free.example.org": [("acme", "verified", None), ("initech", "failed", HOSTNAME_TAKEN)],
        "held.example.org": [("acme", "failed", HOSTNAME_TAKEN), ("globex", "verified", None)],
        "cool.example.org": [("acme", "failed", HOSTNAME_COOLDOWN), ("globex", "removed", None)],
        "rivals.example.org": [
            ("acme", "verified", None),
            ("globex", "failed", HOSTNAME_TAKEN),
            ("initech", "failed", HOSTNAME_TAKEN),
        ],
    }
    assert {name: claims_on(db.target, name) for name in expected} == expected
