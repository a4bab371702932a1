"""The reconciler's metrics listener: what it serves, a second reconciler on a taken address, and
the counters fed by DNS checks and webhook deliveries."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from domaingate.dns.checker import Expectation
from domaingate.dns.findings import CheckReport, Code, Finding
from domaingate.hostnames import Kind
from domaingate.models import Tenant
from domaingate.settings import Settings, load_settings
from domaingate.states import Status
from domaingate.store import leases as store
from domaingate.store.abc import Database
from reconciler.metrics import CountedChecker, ReconcilerMetrics
from reconciler.tuning import Tuning
from reconciler.webhooks import Backoff
from tests.conftest import sample
from tests.domaingate.cli.test_cli import run as run_cli
from tests.support.wait import await_until

from .conftest import SECRET, FakeClock, Receiver, attach, holding, running


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.content_type, await response.text()


async def test_the_daemon_serves_metrics_and_health(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    # Verified with nothing due and no certificate: one domain.verified event waits in the outbox
    # (no WEBHOOK_URL), and nothing the daemon does changes that.
    await attach(db, tenant, "shop.acme.test", time.time, status=Status.VERIFIED)
    async with running(settings) as base:
        # The listener answers before the first lease renewal has committed (a round trip to
        # the server on PostgreSQL): a lone reconciler holds the lease once that is done.
        async def health() -> str | None:
            status, kind, body = await get(f"{base}/healthz")
            assert (status, kind) == (200, "application/json")
            return body if '"lease": "held"' in body else None

        body = await await_until(health, timeout=5, what="the lone reconciler to hold the lease")
        assert '"status": "ok"' in body

        async def scanned() -> bool:
            text = (await get(f"{base}/metrics"))[2]
            runs = "domaingate_reconciler_job_runs_total"
            return sample(text, runs, job="certs", result="ok") > 0

        await await_until(scanned, timeout=10)
        status, kind, text = await get(f"{base}/metrics")
        assert (status, kind) == (200, "text/plain")
        assert sample(text, "domaingate_reconciler_lease_held") == 1
        assert sample(text, "domaingate_reconciler_outbox_backlog") == 1
        assert sample(text, "domaingate_reconciler_job_runs_total", job="lease", result="ok") >= 1
        # Every outcome and cause is there from the start, at zero.
        for outcome in ("ok", "dns_timeout", "dns_error", "cname_missing"):
            assert sample(text, "domaingate_reconciler_dns_checks_total", outcome=outcome) == 0
        for cause in ("locked", "full", "other"):
            assert sample(text, "domaingate_reconciler_database_errors_total", cause=cause) == 0
        for cause in ("unreadable", "corrupt", "metadata", "mass_loss"):
            assert sample(text, "domaingate_reconciler_cert_scan_errors_total", cause=cause) == 0
        assert sample(text, "domaingate_reconciler_check_errors_total") == 0
    # Closed with the daemon.
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"{base}/healthz")


@pytest.mark.slow
async def test_a_second_reconciler_on_a_taken_address_stops_naming_the_key(
    db: Database, settings: Settings
) -> None:
    env = {
        "DOMAINGATE_CADDY_STORAGE": str(settings.caddy_storage),
        "DOMAINGATE_RESOLVERS": "127.0.0.1:9",
        "DOMAINGATE_RECONCILER_LISTEN": str(settings.reconciler_listen),
    }
    async with running(settings):
        # Its listener answers before its first lease job has run: wait for the lease itself.
        async def leased() -> bool:
            return await store.lease_holder(db, "reconciler") is not None

        await await_until(leased, timeout=10, what="the first reconciler to hold the lease")
        holder = await store.lease_holder(db, "reconciler")
        second = await asyncio.to_thread(run_cli, settings.db.location, "reconcile", env=env)
        assert second.code == 2, second.err
        expected = f"DOMAINGATE_RECONCILER_LISTEN: cannot listen on {settings.reconciler_listen}"
        assert expected in second.err
        assert "address already in use" in second.err
        assert "Traceback" not in second.err
        # It stopped before trying the lease: the first keeps it.
        assert holder is not None
        assert await store.lease_holder(db, "reconciler") == holder


def _report(*codes: Code | None) -> CheckReport:
    findings = tuple(
        Finding(check=f"c{i}", ok=code is None, code=code, message=f"{code or 'fine'} here")
        for i, code in enumerate(codes)
    )
    return CheckReport(hostname="shop.acme.test", findings=findings, provider=None)


class Replay:
    """A Checker answering with the given reports, in order."""

    def __init__(self, *reports: CheckReport) -> None:
        self.reports = list(reports)

    async def check(self, expectation: Expectation) -> CheckReport:
        return self.reports.pop(0)


EXPECTATION = Expectation(
    hostname="shop.acme.test",
    kind=Kind.SUBDOMAIN,
    cname_target="shop.apps.example.net",
    txt_name="_domaingate.shop.acme.test",
    txt_value="",
    require_txt=False,
    edge_ipv4=(),
    edge_ipv6=(),
)


async def test_check_outcomes_are_counted_and_resolver_trouble_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ReconcilerMetrics()
    clock = FakeClock(0)
    replay = Replay(
        _report(None, None),
        _report(Code.CNAME_MISSING, Code.DNS_TIMEOUT),  # definitive: the tenant's to fix
        _report(Code.DNS_TIMEOUT, None),
        _report(Code.DNS_ERROR, Code.DNS_TIMEOUT),
        _report(Code.RESOLVER_DISAGREEMENT),  # a change spreading: not resolver trouble
        _report(Code.DNS_TIMEOUT),
        _report(Code.DNS_TIMEOUT),
    )
    checker = CountedChecker(replay, metrics, clock=clock, log_every=60)
    with caplog.at_level(logging.WARNING, logger="reconciler.metrics"):
        for step in (0, 0, 0, 10, 20, 20, 25):
            clock.advance(step)
            await checker.check(EXPECTATION)
    text = metrics.render().decode()
    counted = {
        outcome: sample(text, "domaingate_reconciler_dns_checks_total", outcome=outcome)
        for outcome in ("ok", "cname_missing", "dns_timeout", "dns_error", "resolver_disagreement")
    }
    assert counted == {
        "ok": 1,
        "cname_missing": 1,
        "dns_timeout": 3,
        "dns_error": 1,
        "resolver_disagreement": 1,
    }
    # The first inconclusive check at once; the next ones wait for the minute to pass.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "(1 dns_timeout since the last report)" in lines[0]
    assert "dns_timeout here" in lines[0]
    assert "(1 dns_error, 2 dns_timeout since the last report)" in lines[1]


async def test_webhook_deliveries_are_counted(
    db: Database, tenant: Tenant, settings: Settings, receiver: Receiver
) -> None:
    await attach(db, tenant, "shop.acme.test", time.time, status=Status.ACTIVE)  # two events
    hooked = load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    )
    receiver.fail_first = 1
    async with aiohttp.ClientSession() as session:
        reconciler = await holding(
            hooked,
            db,
            session=session,
            tuning=Tuning(webhook_backoff=Backoff(base=0.01, cap=0.01)),
        )

        async def delivered() -> bool:
            await reconciler.deliver_webhooks()
            await reconciler.refresh_metrics()
            text = reconciler.metrics.render().decode()
            return sample(text, "domaingate_reconciler_outbox_backlog") == 0

        await await_until(delivered, timeout=10)
    text = reconciler.metrics.render().decode()
    deliveries = "domaingate_reconciler_webhook_deliveries_total"
    assert sample(text, deliveries, result="delivered") == 2
    assert sample(text, deliveries, result="failed") == 2
