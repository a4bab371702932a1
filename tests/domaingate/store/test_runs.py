"""The reconciler's last runs in the store (domaingate.store.runs): the upsert, the read of every
job, the throttle that keeps a per-second job to a write every RECORD_EVERY seconds, and when a
row is late. On a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domaingate.store import runs
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from tests.conftest import T0, FakeClock, target


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with await open_database(target(tmp_path / "runs.db")) as database:
        yield database


async def stored(db: Database) -> dict[str, runs.JobRun]:
    return {run.job: run for run in await runs.last_runs(db) if run.last_run_at is not None}


async def test_every_job_is_listed_and_a_failure_keeps_the_last_success(db: Database) -> None:
    assert [run.job for run in await runs.last_runs(db)] == list(runs.JOBS)
    assert await stored(db) == {}

    await runs.record_run(db, "certs", ran_at=T0, ok_at=T0, error=None)
    await runs.record_run(db, "certs", ran_at=T0 + 60, ok_at=None, error="OSError: gone")
    assert (await stored(db))["certs"] == runs.JobRun(
        job="certs", last_run_at=T0 + 60, last_ok_at=T0, last_error="OSError: gone"
    )
    await runs.record_run(db, "certs", ran_at=T0 + 120, ok_at=T0 + 120, error=None)
    assert (await stored(db))["certs"] == runs.JobRun(
        job="certs", last_run_at=T0 + 120, last_ok_at=T0 + 120, last_error=None
    )


async def test_a_fast_job_is_written_at_most_every_record_every(db: Database) -> None:
    clock = FakeClock()
    recorder = runs.RunRecorder(db, clock, {"dns": runs.RECORD_EVERY, "certs": 0.0})
    await recorder.ran("dns", None)  # the first run is written at once
    assert (await stored(db))["dns"].last_run_at == T0
    for _ in range(int(runs.RECORD_EVERY) - 1):
        clock.advance(1)
        await recorder.ran("dns", "TimeoutError: resolver")
        await recorder.ran("certs", None)  # an unthrottled job is written every time
        assert (await stored(db))["dns"].last_run_at == T0
        assert (await stored(db))["certs"].last_run_at == clock.now
    clock.advance(1)
    await recorder.ran("dns", None)
    assert (await stored(db))["dns"] == runs.JobRun(
        job="dns", last_run_at=clock.now, last_ok_at=clock.now, last_error=None
    )

    # A failure held back by the throttle is not lost: it is written at the next chance or at
    # shutdown, with the success before it.
    ok_at = clock.now
    clock.advance(2)
    await recorder.ran("dns", "TimeoutError: resolver")
    assert (await stored(db))["dns"].last_error is None
    await recorder.flush()
    assert (await stored(db))["dns"] == runs.JobRun(
        job="dns", last_run_at=clock.now, last_ok_at=ok_at, last_error="TimeoutError: resolver"
    )


def test_an_error_is_one_short_line() -> None:
    text = runs.short_error(OSError("line one\nline two " + "x" * 500))
    assert text.startswith("OSError: line one line two x")
    assert "\n" not in text
    assert len(text) == runs.ERROR_MAX


def test_a_row_is_late_after_a_few_times_its_interval() -> None:
    dns = runs.JobRun(job="dns", last_run_at=T0, last_ok_at=T0, last_error=None)
    assert not runs.is_late(dns, T0 + 3 * runs.RECORD_EVERY, cert_scan_interval=60)
    assert runs.is_late(dns, T0 + 3 * runs.RECORD_EVERY + 1, cert_scan_interval=60)
    certs = runs.JobRun(job="certs", last_run_at=T0, last_ok_at=None, last_error="x")
    assert not runs.is_late(certs, T0 + 1000, cert_scan_interval=600)
    assert runs.is_late(certs, T0 + 1801, cert_scan_interval=600)
    never = runs.JobRun(job="lease", last_run_at=None, last_ok_at=None, last_error=None)
    assert not runs.is_late(never, T0 + 10**6, cert_scan_interval=60)
