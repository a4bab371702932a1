"""The daemon: wires the reconciler's jobs into an APScheduler 3.x `AsyncIOScheduler` and runs them.

Jobs: the lease (renewed every third of its ttl), due DNS checks (`reconciler.schedule`), the
certificate job (`CERT_SCAN_INTERVAL`; `reconciler.certificates`), removal clean-up with the purge,
webhook delivery when `WEBHOOK_URL` is set, and this edge's own storage report (every process,
lease or not). Each job's work lives in its own module; this one schedules them. The lease's
work does nothing unless this process holds the lease, and writes through a `FencedDatabase`
(`domaingate.store.fencing`), which checks the fencing token in each write's own transaction: a
job stopped by a refused write ends as `fenced` and the process stands by. The edge's report
and clean-up of its own storage are fenced by the storage's lease instead. Not fenced: the
lease's own compare-and-set writes, and the webhook POSTs
(a paused holder may repeat a delivery after waking, which receivers deduplicate by event id,
but cannot mark it). The metrics listener opens before the lease is first tried, so a second
reconciler on the same address stops at once. Shutdown is graceful: running jobs get a few
seconds to write their results, then everything opened here is closed in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from domaingate.dns.checker import DnsChecker
from domaingate.settings import Settings
from domaingate.store import outbox
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.errors import LeaseLost, StoreError
from domaingate.store.fencing import FencedDatabase
from domaingate.store.retention import purge_removed
from domaingate.store.runs import RECORD_EVERY, RunRecorder, short_error
from domaingate.targets import described
from domaingate.times import Clock
from reconciler.certificates.job import CertJob
from reconciler.certificates.report import EdgeStorage
from reconciler.cleanup import clean_own_storage, clean_removed
from reconciler.lease import Lease
from reconciler.metrics import (
    JOB_RESULTS,
    CountedChecker,
    ReconcilerMetrics,
    create_metrics_app,
    start_listener,
)
from reconciler.schedule import Checker, DnsSchedule
from reconciler.tuning import Tuning
from reconciler.webhooks import WebhookSender

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class Reconciler:
    """One reconciler process's jobs over an open database. `start()`, later `close()`."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        checker: Checker | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.time,
        tuning: Tuning | None = None,
        holder: str | None = None,
        metrics: ReconcilerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.tuning = tuning or Tuning()
        self.metrics = metrics or ReconcilerMetrics()
        self.lease = Lease(db, ttl=self.tuning.lease_ttl, holder=holder)
        # What the jobs write through: each write checks this process's token in its transaction.
        self.fenced = FencedDatabase(
            db, self.lease.fence, on_refused=self._refused, idle_timeout=self.tuning.lease_ttl
        )
        fenced = self.fenced
        self.dns = DnsSchedule(
            fenced,
            settings,
            CountedChecker(checker or DnsChecker.from_settings(settings), self.metrics),
            clock,
            on_error=self.metrics.check_errors.inc,
        )
        # This edge's storage: every reconciler reports and cleans its own, lease or not, so
        # its reports are fenced by its storage's lease, not the reconciler's.
        self.edge = EdgeStorage(
            db,
            settings.caddy_storage,
            settings.edge_name,
            clock,
            lease_ttl=self.tuning.lease_ttl,
            holder=self.lease.holder,
            on_error=self.metrics.cert_scan_error,
        )
        self.certs = CertJob(
            fenced,
            self.edge,
            clock,
            expiring_days=settings.expiring_days,
            full_every=self.tuning.cert_full_every,
            stale_after=settings.edge_stale_after,
            on_error=self.metrics.cert_scan_error,
        )
        self.metrics.lease_held.set_function(lambda: float(self.lease.held()))
        self.metrics.lease_token.set_function(lambda: float(self.lease.token or 0))
        self.metrics.checks_in_flight.set_function(lambda: self.dns.in_flight)
        self.webhooks: WebhookSender | None = None
        if settings.webhook_url:
            if not settings.webhook_secret:
                # Settings refuse this already; delivery must never be off without a word.
                raise ValueError("WEBHOOK_URL is set without WEBHOOK_SECRET")
            # Without a session passed in, the sender opens its own: a URL set means delivery.
            self.webhooks = WebhookSender(
                fenced,
                session,
                url=settings.webhook_url,
                secret=settings.webhook_secret,
                clock=clock,
                backoff=self.tuning.webhook_backoff,
            )
        self.runs: Counter[str] = Counter()  # work jobs that ran (not skipped for the lease)
        # Each job's last run, for the operator's page; filled in by `_add` (jobs faster than
        # RECORD_EVERY are written at most that often).
        self.recorder = RunRecorder(fenced, clock, {})
        self.skipped: Counter[str] = Counter()  # work jobs skipped: another process holds the lease
        self._scheduler: Any = None  # AsyncIOScheduler is untyped; kept private
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # The jobs. Each is also callable on its own (tests, `domaingate` commands).
    async def check_dns(self) -> int:
        return await self.dns.poll()

    async def scan_certs(self) -> int:
        return await self.certs.run()

    async def clean_up(self) -> int:
        settings = self.settings
        result = await clean_removed(
            self.fenced,
            self.edge,
            self.clock,
            reserved_zones=settings.reserved_zones,
            stale_after=settings.edge_stale_after,
        )
        purged = await purge_removed(self.fenced, before=self.clock() - settings.removed_retention)
        if purged:
            log.info(
                "purged %d domains removed more than %g s ago", purged, settings.removed_retention
            )
        return result.cleaned

    async def edge_duties(self) -> int:
        """A standby's share of the certificate and clean-up jobs, for this edge's own storage:
        report it, delete removed domains' certificates from it. The holder's own jobs do both."""
        if self.lease.held():
            return 0
        await self.edge.report()
        zones = self.settings.reserved_zones
        return (
            await clean_own_storage(self.db, self.edge, self.clock, reserved_zones=zones)
        ).cleaned

    async def renew_leases(self) -> bool:
        """The reconciler's lease, and this edge's storage's (which says the edge is alive)."""
        await self.edge.keep()
        return await self.lease.renew()

    async def deliver_webhooks(self) -> int:
        if self.webhooks is None:
            return 0
        result = await self.webhooks.deliver_due()
        self.metrics.webhook_deliveries.labels("delivered").inc(result.delivered)
        self.metrics.webhook_deliveries.labels("failed").inc(result.failed)
        return result.delivered

    async def refresh_metrics(self) -> None:
        """The figures read at scrape time."""
        try:
            self.metrics.outbox_backlog.set(await outbox.backlog(self.db))
        except StoreError as exc:
            self.metrics.database_error(exc)
            log.warning("cannot count the webhook outbox for /metrics: %s", exc)

    def _refused(self, exc: LeaseLost) -> None:
        # Every refused write is counted; the lease logs its loss once and stops the holding.
        self.metrics.fenced_writes.inc()
        self.lease.lost(exc.token)

    def health(self) -> Mapping[str, object]:
        return {
            "status": "stopping" if self._stopping else "ok",
            "lease": "held" if self.lease.held() else "standby",
            "holder": self.lease.holder,
        }

    async def start(self) -> None:
        # Try the lease before the first tick, so a lone reconciler works from its first second.
        await self.renew_leases()
        settings = self.settings
        dns_poll = min(
            1.0,
            settings.pending_fast_interval,
            settings.pending_slow_interval,
            settings.drift_interval,
        )
        scheduler = AsyncIOScheduler(timezone=UTC)
        self._add(scheduler, "lease", self.renew_leases, self.lease.renew_every, guarded=False)
        self._add(scheduler, "dns", self.check_dns, dns_poll)
        self._add(scheduler, "certs", self.scan_certs, settings.cert_scan_interval)
        cleanup_every = min(self.tuning.cleanup_interval, settings.cert_scan_interval)
        self._add(scheduler, "cleanup", self.clean_up, cleanup_every)
        # Not recorded: only the holder's runs are, and the holder's own jobs do this.
        every = settings.cert_scan_interval
        self._add(scheduler, "edge", self.edge_duties, every, guarded=False, record=False)
        if self.webhooks is not None:
            self._add(scheduler, "webhooks", self.deliver_webhooks, self.tuning.webhook_interval)
        scheduler.start()
        self._scheduler = scheduler

    def _add(
        self,
        scheduler: Any,
        name: str,
        job: Job,
        every: float,
        *,
        guarded: bool = True,
        record: bool = True,
    ) -> None:
        for result in JOB_RESULTS:
            self.metrics.job_runs.labels(name, result)  # shown at 0 from the start
        self.recorder.min_gap[name] = RECORD_EVERY if every < RECORD_EVERY else 0.0
        scheduler.add_job(
            functools.partial(self._run_job, name, job, guarded, record),
            "interval",
            seconds=every,
            id=name,
            name=name,
            # One run at a time per job; runs missed while busy collapse into one, never pile up.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )

    async def _run_job(self, name: str, job: Job, guarded: bool, record: bool = True) -> None:
        if self._stopping:
            return
        if guarded and not self.lease.held():
            self.skipped[name] += 1
            self.metrics.job_runs.labels(name, "skipped").inc()
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        error: str | None = None
        try:
            try:
                await job()
                if guarded:
                    self.runs[name] += 1
                self.metrics.job_runs.labels(name, "ok").inc()
            except LeaseLost:
                # Another process holds the lease now: nothing of the refused write was written,
                # the lease logged it, and this run's record would be refused as well.
                self.metrics.job_runs.labels(name, "fenced").inc()
                return
            except Exception as exc:
                error = short_error(exc)
                self.metrics.job_runs.labels(name, "failed").inc()
                # Logged here, once, with the job's name; the scheduler keeps the job.
                log.exception("reconciler job %s failed", name)
            # Only the holder's runs are recorded: a standby's lease attempts are not runs of
            # the work, and would overwrite the holder's row. The lease keeps its own error.
            if record and (guarded or self.lease.held()):
                await self._record(name, error or (None if guarded else self.lease.error))
        finally:
            if task is not None:
                self._running.discard(task)

    async def _record(self, name: str, error: str | None) -> None:
        try:
            await self.recorder.ran(name, error)
        except Exception as exc:
            # The run's outcome stays pending and is written with a later one.
            log.warning("cannot record the %s job's run: %s", name, exc)

    async def close(self) -> None:
        """Stop the jobs, let running ones finish within the grace time, release the lease."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.pause()
        grace = self.tuning.shutdown_grace
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        await self.dns.close(grace=grace)
        if self._scheduler is not None:
            # Cancels whatever outlived the grace; wait=False because asyncio jobs cannot be joined.
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            # AsyncIOScheduler.shutdown() only schedules itself with call_soon: let it run now,
            # while the loop is certainly still alive.
            await asyncio.sleep(0)
            leftovers = set(self._running)
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
        if self.lease.held():
            try:
                await self.recorder.flush()
            except Exception as exc:
                log.warning("cannot record the last runs at stop: %s", exc)
        await self.edge.release()
        try:
            await self.lease.release()
        except Exception:
            # The lease lapses by itself after its ttl; a standby takes over then, not at once.
            log.exception("could not release the %s lease at stop", self.lease.name)
        if self.webhooks is not None:
            await self.webhooks.close()


async def run(
    settings: Settings,
    stop: asyncio.Event,
    *,
    clock: Clock = time.time,
    checker: Checker | None = None,
    tuning: Tuning | None = None,
    holder: str | None = None,
) -> None:
    """Run the reconciler on `settings` until `stop` is set, then shut down gracefully.

    Raises SettingsError (naming RECONCILER_LISTEN) when the metrics listener cannot bind.
    """
    metrics = ReconcilerMetrics()
    async with contextlib.AsyncExitStack() as stack:
        db = await open_database(settings.db, on_error=metrics.database_error, role="reconciler")
        stack.push_async_callback(db.close)
        reconciler = Reconciler(
            settings,
            db,
            checker=checker,
            clock=clock,
            tuning=tuning,
            holder=holder,
            metrics=metrics,
        )
        app = create_metrics_app(
            metrics, refresh=reconciler.refresh_metrics, health=reconciler.health
        )
        runner = await start_listener(settings.reconciler_listen, app)
        stack.push_async_callback(runner.cleanup)
        stack.push_async_callback(reconciler.close)
        await reconciler.start()
        log.info(
            "reconciler started on %s (holder %s), metrics on http://%s/metrics",
            described(settings.db),
            reconciler.lease.holder,
            settings.reconciler_listen,
        )
        await stop.wait()
        log.info("reconciler stopping")


async def serve(settings: Settings) -> None:
    """`run()` with SIGTERM and SIGINT wired to a graceful stop (`domaingate reconcile`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Handlers only set the event: the shutdown itself runs in `run()`, in the normal flow.
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(settings, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
