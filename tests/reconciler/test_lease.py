"""The lease: one reconciler works on a database, a second stands by and takes over."""

from __future__ import annotations

import os
import subprocess
import time

import aiohttp
import pytest

from domaingate.models import Tenant
from domaingate.settings import Settings, load_settings
from domaingate.states import Status
from domaingate.store import leases as store
from domaingate.store import overview
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from reconciler.daemon import Reconciler
from reconciler.lease import Lease, died_here, new_holder_id
from reconciler.tuning import Tuning
from reconciler.webhooks import Backoff
from tests.support.wait import await_until

from .conftest import SECRET, Receiver, attach

WORK = {"dns", "certs", "cleanup", "webhooks"}
# Short enough to see a lease lapse by the database's clock; long enough for a busy machine's
# renewal to finish well within it.
TTL = 1.0


async def test_lease_is_exclusive_until_released_or_expired(
    db: Database, settings: Settings
) -> None:
    async with await open_database(settings.db) as other_db:
        first = Lease(db, ttl=TTL, holder="first")
        second = Lease(other_db, ttl=TTL, holder="second")
        assert await first.renew()
        assert not await second.renew()
        assert first.held() and not second.held()
        assert await store.lease_holder(db, "reconciler") == "first"

        # The first stops renewing (hung, or killed): by the database's clock the lease lapses.
        await await_until(second.renew, timeout=10, what="the lapsed lease to be taken over")
        assert not first.held()  # its own clock ended its trust no later than the database's
        assert not await first.renew()
        assert await store.lease_holder(db, "reconciler") == "second"

        await second.release()  # a clean shutdown hands over at once
        assert not second.held()
        assert await store.lease_holder(db, "reconciler") is None
        assert await first.renew()


async def test_a_renewal_keeps_the_token_and_a_takeover_adds_one(
    db: Database, settings: Settings
) -> None:
    async with await open_database(settings.db) as other_db:
        first = Lease(db, ttl=30, holder="first")
        second = Lease(other_db, ttl=30, holder="second")
        assert await first.renew()
        token = first.token
        assert token is not None
        assert await first.renew() and first.token == token  # renewals keep it
        assert not await second.renew() and second.token is None
        await first.release()
        assert await second.renew() and second.token == token + 1  # a takeover adds one
        await second.release()
        assert await second.renew() and second.token == token + 1  # its own again: kept
        await second.release()
        assert await first.renew() and first.token == token + 2
        # The operator's status shows the token of the row as stored.
        health = await overview.health(db, 0.0, 300)
        assert health.lease is not None and health.lease.token == token + 2


@pytest.mark.slow
async def test_two_reconcilers_on_one_database_only_one_works(
    db: Database, tenant: Tenant, settings: Settings, receiver: Receiver
) -> None:
    hooked = load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        resolvers=settings.resolvers,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        cert_scan_interval=0.1,
    )
    tuning = Tuning(
        lease_ttl=0.6,
        webhook_interval=0.05,
        cleanup_interval=0.1,
        webhook_backoff=Backoff(base=0.05, cap=0.1),
    )
    for name in ("one", "two", "three"):
        await attach(db, tenant, f"{name}.acme.test", time.time, status=Status.VERIFIED)

    async with (
        await open_database(settings.db) as db_a,
        await open_database(settings.db) as db_b,
        aiohttp.ClientSession() as session_a,
        aiohttp.ClientSession() as session_b,
    ):
        a = Reconciler(hooked, db_a, session=session_a, tuning=tuning, holder="a")
        b = Reconciler(hooked, db_b, session=session_b, tuning=tuning, holder="b")
        await a.start()
        await b.start()
        try:
            await await_until(lambda: len(receiver.accepted()) == 3, timeout=10)
            await await_until(lambda: all(a.runs[job] >= 3 for job in WORK), timeout=10)
            assert a.lease.held() and not b.lease.held()
            assert not set(a.skipped) & WORK
            assert not b.runs
            assert all(b.skipped[job] >= 1 for job in WORK)
            await a.close()
            # The holder left cleanly: the other takes over within a renewal period and works.
            await await_until(lambda: b.lease.held(), timeout=3)
            await await_until(lambda: all(b.runs[job] >= 1 for job in WORK), timeout=3)
        finally:
            await a.close()  # idempotent
            await b.close()

    ids = [r.event_id for r in receiver.accepted()]
    assert len(ids) == len(set(ids)) == 3


def _ended_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


async def test_a_holder_that_died_on_this_host_is_taken_over_at_once(db: Database) -> None:
    mine = new_holder_id()
    host, _pid, nonce, namespace = mine.split(":")
    dead = f"{host}:{_ended_pid()}:{nonce}:{namespace}"
    alive_elsewhere = f"other-host.example:{_ended_pid()}:{nonce}:{namespace}"
    other_namespace = f"{host}:{_ended_pid()}:{nonce}:1"
    living = f"{host}:{os.getppid()}:{nonce}:{namespace}"  # pytest's parent: still running
    assert died_here(dead)
    for holder in (alive_elsewhere, other_namespace, living, "first", mine):
        assert not died_here(holder), holder

    # Lease rows left by processes that no longer renew them, long before their ttl ends.
    for holder, taken in ((alive_elsewhere, False), (other_namespace, False), (living, False)):
        await store.release_lease(db, "reconciler", holder)
        assert await store.take_lease(db, "reconciler", holder, 30) is not None
        assert await Lease(db, ttl=30).renew() is taken, holder
        await store.release_lease(db, "reconciler", holder)
    assert await store.take_lease(db, "reconciler", dead, 30) is not None
    successor = Lease(db, ttl=30)
    assert await successor.renew()
    assert await store.lease_holder(db, "reconciler") == successor.holder
