"""The DNS schedule end to end: the daemon, a real knot server and shortened intervals.

Each test runs `reconciler.daemon.run()` on a fresh database and lets the domain move by itself,
then reads the timing of every move back from the event log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from domaingate.models import Domain, DomainEvent, Tenant
from domaingate.settings import Listen, Settings, load_settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import events, tenants
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.targets import SqliteFile
from reconciler.daemon import Reconciler
from reconciler.tuning import Tuning
from tests.conftest import target
from tests.support.knot import Knot
from tests.support.net import HOST, free_port
from tests.support.wait import await_until

from .conftest import attach, running

pytestmark = pytest.mark.knot

Factory = Callable[[Mapping[str, str]], Knot]
PLATFORM = {"apps.test": "shop A 192.0.2.10\n"}
TARGET = "shop.apps.test."
ZONE_WITHOUT = "www A 192.0.2.99\n"  # shop.acme.test does not exist: nxdomain
ZONE_WITH = ZONE_WITHOUT + f"shop CNAME {TARGET}\n"
ZONE_TXT_ONLY = ZONE_WITHOUT + 'shop TXT "hello"\n'  # the name exists, the CNAME does not


def dns_settings(tmp_path: Path, resolver: Listen, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pending_fast_interval": 0.2,
        "retry_budget": 2,
        "drift_grace": 1.5,
        "drift_interval": 0.3,
        "dns_timeout": 1.0,
        **overrides,
    }
    return load_settings(
        env={},
        db=SqliteFile(tmp_path / "x.db"),
        caddy_storage=tmp_path / "caddy",
        resolvers=(resolver,),
        platform_zone="apps.test",
        reconciler_listen=Listen(HOST, free_port()),
        **values,
    )


async def status_of(db: Database, domain: Domain) -> Status:
    return (await domain_store.get_by_id(db, domain.id)).status


async def last_event(db: Database, domain: Domain, type_: str) -> DomainEvent:
    matching = [e for e in await events.for_domain(db, domain.id) if e.type == type_]
    assert matching, f"no {type_} event"
    return matching[-1]


@pytest.fixture
async def knot_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with await open_database(target(tmp_path / "x.db")) as db:
        yield db


@pytest.fixture
async def acme(knot_db: Database) -> Tenant:
    tenant, _token = await tenants.create(knot_db, "acme", time.time)
    return tenant


async def test_pending_domain_turns_verified_once_the_cname_appears(
    tmp_path: Path, knot_factory: Factory, knot_db: Database, acme: Tenant
) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": ZONE_WITHOUT})
    settings = dns_settings(tmp_path, knot.listen, retry_budget=4)
    domain = await attach(knot_db, acme, "shop.acme.test", time.time, first_check_in=0.2)

    async with running(settings):

        async def checked_and_missing() -> bool:
            row = await domain_store.get_by_id(knot_db, domain.id)
            return row.failure_count >= 2 and row.last_check_code == "nxdomain"

        await await_until(checked_and_missing, timeout=10)
        assert await status_of(knot_db, domain) is Status.PENDING
        await asyncio.to_thread(knot.set_zone, "acme.test", ZONE_WITH)
        published = time.time()

        async def verified() -> bool:
            return await status_of(knot_db, domain) is Status.VERIFIED

        await await_until(verified, timeout=3)

    row = await domain_store.get_by_id(knot_db, domain.id)
    assert row.last_check_code is None and row.failure_count == 0 and row.failing_since is None
    assert row.verified_at is not None and row.verified_at >= published
    # Within a couple of fast intervals of the record appearing, not at some later sweep.
    assert row.verified_at - published < 1.0
    event = await last_event(knot_db, domain, "domain.verified")
    assert event.from_status is Status.PENDING


async def test_records_that_never_appear_fail_at_the_end_of_the_budget(
    tmp_path: Path, knot_factory: Factory, knot_db: Database, acme: Tenant
) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": ZONE_TXT_ONLY})
    settings = dns_settings(tmp_path, knot.listen)
    domain = await attach(knot_db, acme, "shop.acme.test", time.time, first_check_in=0.2)

    async with running(settings):

        async def failed() -> bool:
            return await status_of(knot_db, domain) is Status.FAILED

        await await_until(failed, timeout=6)

    event = await last_event(knot_db, domain, "domain.failed")
    assert event.reason == "cname_missing"
    assert event.from_status is Status.PENDING
    # The budget (2 s) is measured from the attach; the last check is scheduled at its end.
    assert settings.retry_budget <= event.created_at - domain.created_at < settings.retry_budget + 1
    row = await domain_store.get_by_id(knot_db, domain.id)
    assert row.failure_count >= 5  # checked every 0.2 s meanwhile
    assert row.next_check_at is not None and row.next_check_at >= event.created_at + 0.3 - 0.01


async def test_verified_domain_whose_cname_goes_fails_after_the_grace_time(
    tmp_path: Path, knot_factory: Factory, knot_db: Database, acme: Tenant
) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": ZONE_WITH})
    settings = dns_settings(tmp_path, knot.listen)
    domain = await attach(knot_db, acme, "shop.acme.test", time.time, first_check_in=0.1)

    async with running(settings):

        async def verified() -> bool:
            return await status_of(knot_db, domain) is Status.VERIFIED

        await await_until(verified, timeout=3)
        await asyncio.to_thread(knot.set_zone, "acme.test", ZONE_WITHOUT)
        removed = time.time()

        # Seen, but inside the grace time: still verified.
        async def drifting() -> bool:
            row = await domain_store.get_by_id(knot_db, domain.id)
            return row.failing_since is not None

        await await_until(drifting, timeout=3)
        row = await domain_store.get_by_id(knot_db, domain.id)
        assert row.status is Status.VERIFIED
        assert row.last_check_code == "nxdomain"

        async def failed() -> bool:
            return await status_of(knot_db, domain) is Status.FAILED

        await await_until(failed, timeout=5)

    row = await domain_store.get_by_id(knot_db, domain.id)
    event = await last_event(knot_db, domain, "domain.failed")
    assert (event.reason, row.last_check_code) == ("dns_moved", "dns_moved")
    assert event.from_status is Status.VERIFIED
    assert row.failing_since is not None and row.failing_since >= removed
    # Not before the grace time, and not long after it (the last check is set at its end).
    assert settings.drift_grace <= event.created_at - row.failing_since < settings.drift_grace + 1
    assert event.created_at - removed >= settings.drift_grace


async def test_a_resolver_that_never_answers_never_demotes_a_verified_domain(
    tmp_path: Path, blackhole: Listen, knot_db: Database, acme: Tenant
) -> None:
    settings = dns_settings(tmp_path, blackhole, dns_timeout=0.3)
    domain = await attach(
        knot_db, acme, "shop.acme.test", time.time, status=Status.VERIFIED, first_check_in=0.1
    )
    async with await open_database(settings.db) as db:
        reconciler = Reconciler(settings, db, tuning=Tuning(lease_ttl=5))
        await reconciler.start()
        try:
            # Several times the grace time, with a check every ~0.6 s (timeout + interval).
            await asyncio.sleep(3 * settings.drift_grace)
        finally:
            await reconciler.close()

    assert reconciler.dns.checks_run >= 4
    row = await domain_store.get_by_id(knot_db, domain.id)
    assert row.status is Status.VERIFIED
    assert row.last_check_code == "dns_timeout"
    assert row.failure_count == 0 and row.failing_since is None
    assert [e.type for e in await events.for_domain(knot_db, domain.id)] == [
        "domain.created",
        "domain.verified",
    ]
