"""The reconciler's last runs: one `job_runs` row per job, and when a row counts as late.

Only the lease holder writes (a standby does no work, so it has no runs to tell about; its lease
attempts would overwrite the holder's row with a failure that is not one). A job that runs more
often than `RECORD_EVERY` keeps its outcome in memory and writes it at most that often, so the
per-second DNS poll and webhook delivery do not add a write every second: a row is then up to
`RECORD_EVERY` seconds behind, and still exact about the latest run it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domaingate.store.abc import Database
from domaingate.store.scopes import Scope
from domaingate.times import Clock

# Every job the reconciler reports, in the order shown.
JOBS = ("lease", "dns", "certs", "cleanup", "webhooks")
# Writes of a fast job's row are at least this far apart (seconds).
RECORD_EVERY = 30.0
# A row is late when its last run is older than this many times the job's expected gap.
LATE_FACTOR = 3.0
# Error texts are for a table cell: one line, this long at most.
ERROR_MAX = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRun:
    job: str
    last_run_at: float | None  # None: never recorded on this database
    last_ok_at: float | None
    last_error: str | None  # the last run's error; None when it succeeded


def short_error(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def expected_every(job: str, cert_scan_interval: float) -> float:
    """The longest normal gap between two recorded runs of `job` (reconciler.daemon's schedule:
    certificates every CERT_SCAN_INTERVAL, everything else at least every 30 s, recorded at most
    every RECORD_EVERY)."""
    every = cert_scan_interval if job == "certs" else 30.0
    return max(every, RECORD_EVERY)


def is_late(run: JobRun, now: float, cert_scan_interval: float) -> bool:
    if run.last_run_at is None:
        return False
    return now - run.last_run_at > LATE_FACTOR * expected_every(run.job, cert_scan_interval)


async def record_run(
    db: Database, job: str, *, ran_at: float, ok_at: float | None, error: str | None
) -> None:
    """One upsert; `ok_at` None keeps the success already stored."""
    async with db.write(Scope.row("job_runs", job)) as conn:
        await conn.execute(
            "INSERT INTO job_runs (job, last_run_at, last_ok_at, last_error) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at,"
            " last_ok_at = coalesce(excluded.last_ok_at, job_runs.last_ok_at),"
            " last_error = excluded.last_error",
            (job, ran_at, ok_at, error),
        )


async def last_runs(db: Database) -> list[JobRun]:
    """Every job in `JOBS` order; a job never recorded has only None."""
    async with db.reader.execute(
        "SELECT job, last_run_at, last_ok_at, last_error FROM job_runs"
    ) as cursor:
        rows = {
            str(job): JobRun(job=str(job), last_run_at=ran, last_ok_at=ok, last_error=error)
            async for job, ran, ok, error in cursor
        }
    empty = {"last_run_at": None, "last_ok_at": None, "last_error": None}
    return [rows.get(job) or JobRun(job=job, **empty) for job in JOBS]


@dataclass(slots=True, kw_only=True)
class _Pending:
    ran_at: float
    ok_at: float | None
    error: str | None


class RunRecorder:
    """Collects job outcomes and writes each job's row at most every `min_gap[job]` seconds."""

    def __init__(self, db: Database, clock: Clock, min_gap: Mapping[str, float]) -> None:
        self.db = db
        self.clock = clock
        self.min_gap = dict(min_gap)
        self._pending: dict[str, _Pending] = {}
        self._written: dict[str, float] = {}

    async def ran(self, job: str, error: str | None) -> None:
        """`job` just ended, with `error` or fine. May raise the database's error; the outcome
        stays pending then and is written with a later one."""
        now = self.clock()
        before = self._pending.get(job)
        ok_at = now if error is None else (before.ok_at if before else None)
        self._pending[job] = _Pending(ran_at=now, ok_at=ok_at, error=error)
        written = self._written.get(job)
        if written is None or now - written >= self.min_gap.get(job, 0.0):
            await self._write(job)

    async def flush(self) -> None:
        """Write whatever is pending (at shutdown)."""
        for job in list(self._pending):
            await self._write(job)

    async def _write(self, job: str) -> None:
        pending = self._pending[job]
        await record_run(
            self.db, job, ran_at=pending.ran_at, ok_at=pending.ok_at, error=pending.error
        )
        del self._pending[job]
        self._written[job] = self.clock()
