"""The daemon records its jobs' last runs (domaingate.store.runs) from the job wrapper: real runs
of the scheduled jobs write their rows, a failing job's error is written (at the latest when the
daemon stops), and a standby writes nothing, not even its lease attempts."""

from __future__ import annotations

import time

import pytest

from domaingate.settings import Settings, load_settings
from domaingate.store import leases, runs
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.errors import StoreBusy
from reconciler.daemon import Reconciler
from reconciler.tuning import Tuning
from tests.conftest import sql
from tests.support.wait import await_until

from .conftest import FakeClock


def locked(*_args: object, **_kwargs: object) -> None:
    raise StoreBusy("database is locked")


TUNING = Tuning(lease_ttl=0.6, cleanup_interval=0.1)


def fast(settings: Settings) -> Settings:
    return load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        resolvers=settings.resolvers,
        reconciler_listen=settings.reconciler_listen,
        cert_scan_interval=0.1,
    )


def rows(settings: Settings) -> dict[str, tuple[float, float | None, str | None]]:
    found = sql(settings.db, "SELECT job, last_run_at, last_ok_at, last_error FROM job_runs")
    return {job: (ran, ok, error) for job, ran, ok, error in found}


async def test_the_holders_job_runs_record_their_rows(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.time()
    reconciler = Reconciler(fast(settings), db, tuning=TUNING, holder="a")
    await reconciler.start()
    try:
        await await_until(
            lambda: {"lease", "dns", "certs", "cleanup"} <= set(rows(settings)), timeout=10
        )
        for job, (ran, ok, error) in rows(settings).items():
            assert started <= ran <= time.time(), job
            assert ok == ran and error is None, job
        assert "webhooks" not in rows(settings)  # no WEBHOOK_URL: the job does not run

        failures: list[float] = []

        async def broken() -> int:
            failures.append(time.time())
            raise OSError("the storage is gone")

        # The scheduled job calls the method at each run: a failure from now on. Every 0.1 s, it
        # is written at most every RECORD_EVERY: held back now, written at the stop.
        monkeypatch.setattr(reconciler.certs, "run", broken)
        await await_until(lambda: bool(failures), timeout=10)
        assert rows(settings)["certs"][2] is None
        await reconciler.close()
        ran, ok, error = rows(settings)["certs"]
        assert error == "OSError: the storage is gone"
        assert ok is not None and ok < failures[0] <= ran
    finally:
        await reconciler.close()


async def test_a_standby_records_nothing(db: Database, settings: Settings) -> None:
    async with await open_database(settings.db) as other:
        holder = Reconciler(fast(settings), db, tuning=TUNING, holder="a")
        standby = Reconciler(fast(settings), other, tuning=TUNING, holder="b")
        await holder.start()
        await standby.start()
        try:
            await await_until(
                lambda: all(holder.runs[job] >= 3 for job in ("dns", "certs")), timeout=10
            )
            assert standby.skipped["dns"] >= 1 and not standby.lease.held()
            stamped = rows(settings)["lease"][0]
            await holder.close()  # the standby takes over and records its own runs
            await await_until(lambda: standby.lease.held(), timeout=3)
            await await_until(lambda: rows(settings)["lease"][0] > stamped, timeout=3)
        finally:
            await holder.close()
            await standby.close()
    assert [run.job for run in await runs.last_runs(db)] == list(runs.JOBS)


async def test_a_failed_lease_renewal_is_recorded_while_the_lease_still_holds(
    db: Database, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reconciler = Reconciler(settings, db, clock=clock, holder="a")
    try:
        assert await reconciler.lease.renew()
        monkeypatch.setattr(leases, "take_lease", locked)
        clock.advance(1)
        # The scheduled lease job, through the same wrapper as every run.
        await reconciler._run_job("lease", reconciler.lease.renew, False)
        assert reconciler.lease.held()  # a busy database is not a lost lease
        assert rows(settings)["lease"] == (
            clock.now,
            None,
            "StoreBusy: database is locked",
        )
    finally:
        await reconciler.close()
