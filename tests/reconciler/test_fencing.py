"""Fencing: a lease holder's writes carry its token, and the database refuses them, inside their
own transaction, once another holder has taken the lease over (on both stores)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from domaingate.models import Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import leases
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.errors import LeaseLost, StoreUnavailable
from domaingate.store.fencing import Fence, FencedDatabase
from domaingate.store.leases import RECONCILER_LEASE
from reconciler.lease import Lease
from tests.conftest import sql, target

from .conftest import DAY, FakeClock, attach, holding, make_issuer, make_leaf_pem, store_cert

LE = "acme-v02.api.letsencrypt.org-directory"


def job_rows(db: Database) -> list[tuple[object, ...]]:
    return sql(db.target, "SELECT job FROM job_runs ORDER BY job")


async def record(fenced: Database, job: str) -> None:
    async with fenced.write() as conn:
        await conn.execute(
            "INSERT INTO job_runs (job, last_run_at) VALUES (?, 1)"
            " ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at + 1",
            (job,),
        )


async def test_a_write_with_a_stale_token_is_refused_and_rolled_back(
    db: Database, settings: Settings
) -> None:
    async with await open_database(settings.db) as other_db:
        old = Lease(db, ttl=30, holder="old")
        new = Lease(other_db, ttl=30, holder="new")
        assert await old.renew()
        refused: list[LeaseLost] = []
        fenced = FencedDatabase(db, old.fence, on_refused=refused.append)
        await record(fenced, "dns")  # the holder's token is the lease's: written
        assert job_rows(db) == [("dns",)]

        # The old holder's lease ends (here released; in life it lapses while it is paused)
        # and another takes over, while the old one still believes it holds it.
        await leases.release_lease(db, RECONCILER_LEASE, "old")
        assert await new.renew()
        assert new.token == (old.token or 0) + 1
        ran = False
        with pytest.raises(LeaseLost, match="no longer"):
            async with fenced.write() as conn:
                ran = True
                await conn.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('certs', 1)")
        assert not ran  # refused before the body, inside the transaction, which rolled back
        assert job_rows(db) == [("dns",)]
        assert len(refused) == 1

        # The new holder's fenced writes go through; a process with no lease writes nothing.
        await record(FencedDatabase(other_db, new.fence), "certs")
        assert job_rows(db) == [("certs",), ("dns",)]
        standby = Lease(db, ttl=30, holder="standby")
        with pytest.raises(LeaseLost, match="holds no lease"):
            await record(FencedDatabase(db, standby.fence), "cleanup")
        assert job_rows(db) == [("certs",), ("dns",)]


async def test_a_fenced_write_that_began_before_a_takeover_commits_and_the_next_is_refused(
    db: Database, settings: Settings
) -> None:
    async with await open_database(settings.db) as other_db:
        assert await leases.take_lease(db, RECONCILER_LEASE, "old", 30) is not None
        fence = Fence(name=RECONCILER_LEASE, holder="old", token=1)
        fenced = FencedDatabase(db, lambda: fence)
        async with fenced.write() as conn:
            await conn.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('dns', 1)")
        # The takeover waits for no transaction now; the old token is history.
        await leases.release_lease(db, RECONCILER_LEASE, "old")
        taken = await leases.take_lease(other_db, RECONCILER_LEASE, "new", 30)
        assert taken is not None and taken.token == 2
        with pytest.raises(LeaseLost):
            await record(fenced, "dns")
        assert sql(db.target, "SELECT last_run_at FROM job_runs") == [(1.0,)]
        # A renewal by the new holder keeps its token; the old holder cannot take it back.
        renewed = await leases.take_lease(other_db, RECONCILER_LEASE, "new", 30)
        assert renewed is not None and renewed.token == 2
        assert await leases.take_lease(db, RECONCILER_LEASE, "old", 30) is None


async def test_a_job_stopped_by_a_takeover_is_fenced_and_the_reconciler_stands_by(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    storage: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "gone.acme.test"
    domain = await attach(db, tenant, name, clock, status=Status.VERIFIED)
    await domain_store.remove(db, domain, clock)
    pem = make_leaf_pem(make_issuer("R11"), [name], clock() - DAY, clock() + 60 * DAY)
    certificate = store_cert(storage, LE, name, pem)
    reconciler = await holding(settings, db, clock=clock)
    token = reconciler.lease.token
    assert token is not None
    # Another reconciler takes over while this one is paused: its own clock has not noticed.
    sql(
        db.target,
        "UPDATE leases SET holder = 'successor', token = token + 1 WHERE name = ?",
        (RECONCILER_LEASE,),
    )
    assert reconciler.lease.held()
    with caplog.at_level(logging.WARNING):
        await reconciler._run_job("cleanup", reconciler.clean_up, True)
    # The clean-up's write was refused before it deleted anything or marked the removal.
    assert certificate.exists()
    row = sql(db.target, "SELECT certs_cleaned_at FROM domains WHERE id = ?", (domain.id,))
    assert row == [(None,)]
    assert job_rows(db) == []  # nor was the run recorded
    text = reconciler.metrics.render().decode()
    assert 'domaingate_reconciler_job_runs_total{job="cleanup",result="fenced"} 1.0' in text
    assert "domaingate_reconciler_fenced_writes_total 1.0" in text
    assert not reconciler.lease.held() and reconciler.lease.fence() is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"the reconciler lease was taken over (token {token} is no longer its own); standing by"
    ]
    # Standing by: the next run of the job is skipped, and the lease stays the successor's.
    await reconciler._run_job("cleanup", reconciler.clean_up, True)
    assert reconciler.skipped["cleanup"] == 1
    assert not await reconciler.lease.renew()
    assert await leases.lease_holder(db, RECONCILER_LEASE) == "successor"
    await reconciler.close()
    assert await leases.lease_holder(db, RECONCILER_LEASE) == "successor"


async def test_a_write_refused_for_the_token_of_an_earlier_holding_keeps_the_current_one(
    db: Database, settings: Settings
) -> None:
    async with await open_database(settings.db) as other_db:
        lease = Lease(db, ttl=30, holder="me")
        assert await lease.renew()
        earlier = lease.fence()
        await lease.release()
        assert await Lease(other_db, ttl=30, holder="between").renew()
        await leases.release_lease(other_db, RECONCILER_LEASE, "between")
        assert await lease.renew()  # taken again, with a newer token
        assert earlier is not None and lease.token == earlier.token + 2
        refused: list[LeaseLost] = []
        with pytest.raises(LeaseLost):
            await record(FencedDatabase(db, lambda: earlier, on_refused=refused.append), "dns")
        lease.lost(refused[0].token)  # what the daemon does with a refusal
        assert lease.held() and lease.fence() is not None
        await record(FencedDatabase(db, lease.fence), "dns")
        assert job_rows(db) == [("dns",)]


@pytest.mark.postgres
async def test_a_holder_frozen_inside_a_fenced_transaction_does_not_stall_the_takeover(
    pg_url: str,
) -> None:
    async with (
        await open_database(target(pg_url)) as db,
        await open_database(target(pg_url)) as other_db,
    ):
        assert await leases.take_lease(db, RECONCILER_LEASE, "old", 0.2) is not None
        fence = Fence(name=RECONCILER_LEASE, holder="old", token=1)
        fenced = FencedDatabase(db, lambda: fence, idle_timeout=0.5)
        taken: list[leases.Held | None] = []
        with pytest.raises(StoreUnavailable):
            async with fenced.write() as conn:
                await conn.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('dns', 1)")
                # Frozen between two statements, holding the lease row and the write lock: the
                # server ends the session, and the takeover waiting behind it goes through.
                taken.append(await leases.take_lease(other_db, RECONCILER_LEASE, "new", 30))
        assert taken[0] is not None and taken[0].token == 2
        assert sql(pg_url, "SELECT count(*) FROM job_runs") == [(0,)]
