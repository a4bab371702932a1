"""The reconciler's Prometheus metrics, the checker wrapper that feeds them, and their listener.

The reconciler is a process of its own, so it keeps its own registry and serves `GET /metrics`
and `GET /healthz` on `RECONCILER_LISTEN` (loopback unless `INTERNAL_ALLOW_PUBLIC`, like the
gateway's internal listener). The figures are the ones an operator needs to see a fault: DNS
checks by outcome, checks that could not run or write their result, certificate files that could
not be used, failed database writes by cause, webhook deliveries, the outbox backlog, the lease.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from domaingate.dns.checker import Expectation
from domaingate.dns.findings import CheckReport, Code
from domaingate.settings import Listen, SettingsError
from domaingate.store.errors import FAILURE_CAUSES, failure_cause
from reconciler.schedule import Checker

log = logging.getLogger(__name__)

CERT_ERROR_CAUSES = ("unreadable", "corrupt", "metadata", "mass_loss")
WEBHOOK_RESULTS = ("delivered", "failed")
JOB_RESULTS = ("ok", "failed", "skipped", "fenced")
# Resolver trouble is logged at most this often (the first occurrence at once): during an
# outage every check of every domain fails the same way.
RESOLVER_LOG_EVERY = 60.0
_RESOLVER_TROUBLE = frozenset({Code.DNS_TIMEOUT.value, Code.DNS_ERROR.value})


class ReconcilerMetrics:
    """One reconciler's metrics, in a registry of its own (tests run several in one process)."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.dns_checks = Counter(
            "domaingate_reconciler_dns_checks",
            "DNS checks by outcome: ok, or the result code the check gave",
            ["outcome"],
            registry=registry,
        )
        self.check_errors = Counter(
            "domaingate_reconciler_check_errors",
            "DNS checks that failed to run or to write their result",
            registry=registry,
        )
        self.cert_scan_errors = Counter(
            "domaingate_reconciler_cert_scan_errors",
            "Certificate files and directories the scan could not use, by cause",
            ["cause"],
            registry=registry,
        )
        self.database_errors = Counter(
            "domaingate_reconciler_database_errors",
            "Failed database writes by cause (locked, full, unreachable, other)",
            ["cause"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "domaingate_reconciler_webhook_deliveries",
            "Webhook delivery attempts by result",
            ["result"],
            registry=registry,
        )
        self.job_runs = Counter(
            "domaingate_reconciler_job_runs",
            "Scheduled job runs by job and result (skipped: another process holds the lease;"
            " fenced: stopped by a write refused after another process took the lease over)",
            ["job", "result"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "domaingate_reconciler_outbox_backlog",
            "Webhook events not delivered yet",
            registry=registry,
        )
        self.lease_held = Gauge(
            "domaingate_reconciler_lease_held",
            "1 while this process holds the reconciler lease, else 0",
            registry=registry,
        )
        self.fenced_writes = Counter(
            "domaingate_reconciler_fenced_writes",
            "Writes refused: another process took the lease over, or this one holds none",
            registry=registry,
        )
        self.lease_token = Gauge(
            "domaingate_reconciler_lease_token",
            "The fencing token this process holds the lease with (0: none)",
            registry=registry,
        )
        self.checks_in_flight = Gauge(
            "domaingate_reconciler_dns_checks_in_flight",
            "DNS checks running now",
            registry=registry,
        )
        # Every label value shown from the start, at 0, so a rate() has a series to work on.
        for outcome in ("ok", *(code.value for code in Code)):
            self.dns_checks.labels(outcome)
        for labelled, values in (
            (self.cert_scan_errors, CERT_ERROR_CAUSES),
            (self.database_errors, FAILURE_CAUSES),
            (self.webhook_deliveries, WEBHOOK_RESULTS),
        ):
            for value in values:
                labelled.labels(value)

    def cert_scan_error(self, cause: str) -> None:
        # Called from the scan's thread: prometheus_client's counters are thread-safe.
        self.cert_scan_errors.labels(cause).inc()

    def database_error(self, exc: BaseException) -> None:
        self.database_errors.labels(failure_cause(exc)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CountedChecker:
    """A Checker that counts each check's outcome and logs resolver trouble (rate-limited).

    A check that fails only because resolvers time out or answer SERVFAIL or garbage says nothing
    about the tenant's records and moves no domain, so without this line a resolver outage would
    leave no trace in the log. (Resolvers that disagree are DNS changes spreading: counted, not
    logged.)
    """

    def __init__(
        self,
        checker: Checker,
        metrics: ReconcilerMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every: float = RESOLVER_LOG_EVERY,
    ) -> None:
        self._checker = checker
        self._metrics = metrics
        self._clock = clock
        self._log_every = log_every
        self._next_log = float("-inf")
        self._unlogged: Tally[str] = Tally()

    async def check(self, expectation: Expectation) -> CheckReport:
        report = await self._checker.check(expectation)
        error = report.error
        outcome = "ok" if error is None or error.code is None else error.code.value
        self._metrics.dns_checks.labels(outcome).inc()
        if error is not None and report.transient and outcome in _RESOLVER_TROUBLE:
            self._unlogged[outcome] += 1
            now = self._clock()
            if now >= self._next_log:
                counts = ", ".join(f"{n} {c}" for c, n in sorted(self._unlogged.items()))
                log.warning(
                    "DNS checks inconclusive, the resolvers are failing (%s since the last "
                    "report); e.g. %s: %s",
                    counts,
                    report.hostname,
                    error.message,
                )
                self._unlogged.clear()
                self._next_log = now + self._log_every
        return report


# --- the listener -------------------------------------------------------------------------------

METRICS = web.AppKey("metrics", ReconcilerMetrics)
REFRESH: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("refresh")
HEALTH: web.AppKey[Callable[[], Mapping[str, object]]] = web.AppKey("health")


async def _metrics(request: web.Request) -> web.Response:
    await request.app[REFRESH]()
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[HEALTH]()))


def create_metrics_app(
    metrics: ReconcilerMetrics,
    *,
    refresh: Callable[[], Awaitable[None]],
    health: Callable[[], Mapping[str, object]],
) -> web.Application:
    """The listener's application: `GET /metrics` and `GET /healthz`. `refresh` updates the
    figures read at scrape time; `health` is the /healthz body."""
    app = web.Application()
    app[METRICS] = metrics
    app[REFRESH] = refresh
    app[HEALTH] = health
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_listener(listen: Listen, app: web.Application) -> web.AppRunner:
    """Serve `app` on `listen`; a bind that fails is a SettingsError naming RECONCILER_LISTEN."""
    # No access log: a scrape every few seconds would drown the reconciler's own lines.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = "; is another reconciler running on this machine? Give each its own address"
        raise SettingsError(
            "RECONCILER_LISTEN", f"cannot listen on {listen}: {reason}{hint}"
        ) from exc
    return runner
