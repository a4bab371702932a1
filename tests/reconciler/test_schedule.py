"""The DNS schedule with a scripted checker: due selection, the concurrency bound, the writes."""

from __future__ import annotations

import asyncio
import time

import pytest

from domaingate.dns.checker import Expectation
from domaingate.dns.findings import CheckReport, Code, Finding
from domaingate.instructions import expectation_for
from domaingate.models import Tenant
from domaingate.settings import Settings, load_settings
from domaingate.states import Status
from domaingate.store import certificates as cert_store
from domaingate.store import checks as check_store
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.errors import StoreFull
from reconciler import schedule as schedule_module
from reconciler.schedule import DnsSchedule

from .conftest import attach


def report(hostname: str, code: Code | None) -> CheckReport:
    finding = (
        Finding(check="cname", ok=True, code=None, message="fine")
        if code is None
        else Finding(check="cname", ok=False, code=code, message=f"{code.value}: fix it")
    )
    return CheckReport(hostname=hostname, findings=(finding,), provider=None)


class ScriptedChecker:
    """Answers from a table, after `delay`; records how many checks overlapped."""

    def __init__(self, answers: dict[str, Code | None], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.seen: list[Expectation] = []
        self.running = 0
        self.peak = 0
        self.release = asyncio.Event()
        self.release.set()

    async def check(self, expectation: Expectation) -> CheckReport:
        self.seen.append(expectation)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            await self.release.wait()
            answer = self.answers[expectation.hostname]
        finally:
            self.running -= 1
        return report(expectation.hostname, answer)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        platform_zone="apps.example.net",
        check_concurrency=3,
        txt_prefix="_dg",
    )


async def test_only_due_domains_are_checked_and_the_outcome_written(
    db: Database, tenant: Tenant, fast: Settings
) -> None:
    now = time.time()
    due = await attach(db, tenant, "due.acme.test", time.time, first_check_in=-1)
    later = await attach(db, tenant, "later.acme.test", time.time, first_check_in=600)
    gone = await attach(db, tenant, "gone.acme.test", time.time, first_check_in=-1)
    await domain_store.remove(db, gone, time.time)
    apex = await attach(db, tenant, "acme.test", time.time, first_check_in=-1)
    checker = ScriptedChecker({"due.acme.test": None, "acme.test": Code.MISSING_TXT})

    schedule = DnsSchedule(db, fast, checker, time.time)
    assert await schedule.run_due() == 2
    assert {e.hostname for e in checker.seen} == {"due.acme.test", "acme.test"}

    verified = await domain_store.get_by_id(db, due.id)
    assert verified.status is Status.VERIFIED
    assert verified.next_check_at is not None and verified.next_check_at >= now + 3600 - 1
    pending = await domain_store.get_by_id(db, apex.id)
    assert (pending.status, pending.last_check_code, pending.failure_count) == (
        Status.PENDING,
        "missing_txt",
        1,
    )
    assert pending.next_check_at is not None and pending.next_check_at >= now + 60 - 1
    assert (await domain_store.get_by_id(db, later.id)).last_checked_at is None
    # Nothing is due any more.
    assert await schedule.run_due() == 0


def test_expectation_follows_the_domain_and_settings() -> None:
    from tests.domaingate.lifecycle.test_planners import domain

    settings = load_settings(
        env={}, platform_zone="apps.example.net", edge_ipv4=("192.0.2.1",), txt_prefix="_dg"
    )
    d = domain(Status.PENDING, method="txt", app="blog")
    exp = expectation_for(d, settings)
    assert exp.cname_target == "blog.apps.example.net"
    assert exp.txt_name == "_dg.shop.acme.test"
    assert exp.txt_value == d.txt_token
    assert exp.require_txt is True
    assert exp.edge_ipv4 == ("192.0.2.1",)


async def test_checks_run_at_most_check_concurrency_at_once(
    db: Database, tenant: Tenant, fast: Settings
) -> None:
    names = [f"n{i}.acme.test" for i in range(10)]
    for name in names:
        await attach(db, tenant, name, time.time, first_check_in=-1)
    checker = ScriptedChecker(dict.fromkeys(names), delay=0.05)
    schedule = DnsSchedule(db, fast, checker, time.time)

    checker.release.clear()
    # Two rounds of the concurrency are taken in flight; a second poll does not pick them again.
    assert await schedule.poll() == 6
    assert await schedule.poll() == 0
    await asyncio.sleep(0.1)
    assert checker.running == 3
    checker.release.set()
    # The first poll filled its room, so the rest is topped up as checks finish, without
    # waiting for the daemon's next poll.
    await schedule.drain()
    assert len(checker.seen) == 10
    assert await schedule.run_due() == 0
    assert checker.peak == 3
    assert sorted(e.hostname for e in checker.seen) == sorted(names)


async def test_a_domain_changed_during_its_check_is_left_alone(
    db: Database, tenant: Tenant, fast: Settings
) -> None:
    domain = await attach(db, tenant, "moving.acme.test", time.time, first_check_in=-1)
    checker = ScriptedChecker({"moving.acme.test": None})
    checker.release.clear()
    schedule = DnsSchedule(db, fast, checker, time.time)
    await schedule.poll()
    await asyncio.sleep(0.05)
    await domain_store.remove(db, domain, time.time)  # the tenant detaches it meanwhile
    checker.release.set()
    await schedule.drain()
    row = await domain_store.get_by_id(db, domain.id)
    assert row.status is Status.REMOVED and row.last_checked_at is None


async def test_a_checker_crash_postpones_the_domain(
    db: Database, tenant: Tenant, fast: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    domain = await attach(db, tenant, "crash.acme.test", time.time, first_check_in=-1)
    checker = ScriptedChecker({})  # KeyError: a bug, not a DNS answer
    schedule = DnsSchedule(db, fast, checker, time.time)
    assert await schedule.run_due() == 1
    row = await domain_store.get_by_id(db, domain.id)
    assert row.status is Status.PENDING and row.last_checked_at is None
    assert row.next_check_at is not None and row.next_check_at > time.time() + 30
    assert "checking crash.acme.test failed" in caplog.text
    assert await schedule.run_due() == 0


async def test_checks_pause_while_results_cannot_be_written(
    db: Database,
    tenant: Tenant,
    fast: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = [f"w{i}.acme.test" for i in range(3)]
    for name in names:
        await attach(db, tenant, name, time.time, first_check_in=-1)
    checker = ScriptedChecker(dict.fromkeys(names))
    schedule = DnsSchedule(db, fast, checker, time.time)
    full = StoreFull("database or disk is full")

    async def unwritable(*args: object, **kwargs: object) -> bool:
        raise full

    # Reads work, every write fails: what a full disk or a long-held lock looks like.
    monkeypatch.setattr(schedule._writer, "write", unwritable)
    monkeypatch.setattr(check_store, "postpone_check", unwritable)
    monkeypatch.setattr(schedule_module, "MIN_PAUSE", 0.2)
    assert await schedule.run_due() == 3
    assert "DNS checks paused" in caplog.text
    # Still due in the table, but not checked again until the pause ends.
    assert await schedule.run_due() == 0
    assert len(checker.seen) == 3
    await asyncio.sleep(0.25)
    assert await schedule.run_due() == 3
    # A second failing round doubles the pause.
    assert await schedule.run_due() == 0
    await asyncio.sleep(0.25)
    assert await schedule.run_due() == 0
    await asyncio.sleep(0.2)
    monkeypatch.undo()
    assert await schedule.run_due() == 3
    assert len(checker.seen) == 9
    assert {d.status for d in await cert_store.live_domains(db)} == {Status.VERIFIED}
