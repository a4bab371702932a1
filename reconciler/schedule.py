"""The DNS schedule: run the checks that are due, at most `check_concurrency` at a time.

Each domain carries its own `next_check_at`, written by `domaingate.lifecycle.plan_check` (the
fast and slow pending intervals, the drift interval, the retry budget and the drift grace all
live there), so this module only has to poll for due rows often and start their checks. Checks
run as tasks that outlive the poll, so one slow resolver does not hold back domains that fall due
a second later; a domain already in flight is not selected again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from domaingate.dns.checker import Expectation
from domaingate.dns.findings import CheckReport
from domaingate.instructions import expectation_for
from domaingate.lifecycle.dns import CheckOutcome, Policy, plan_check
from domaingate.models import Domain
from domaingate.settings import Settings
from domaingate.store import checks as store
from domaingate.store.abc import Database
from domaingate.store.errors import LeaseLost
from domaingate.times import Clock
from reconciler.writer import CheckWriter

log = logging.getLogger(__name__)

MIN_PAUSE = 1.0


class Checker(Protocol):
    async def check(self, expectation: Expectation) -> CheckReport: ...


class DnsSchedule:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        checker: Checker,
        clock: Clock,
        *,
        on_error: Callable[[], object] | None = None,
    ) -> None:
        self._db = db
        self._on_error = on_error  # told of each check that could not run or write its result
        self._settings = settings
        self._checker = checker
        self._clock = clock
        self._policy = Policy.from_settings(settings)
        self._semaphore = asyncio.Semaphore(settings.check_concurrency)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._writer = CheckWriter(db)
        self.checks_run = 0  # checks whose outcome was written (or found stale)
        # Topping up: when a poll filled its room, more is probably due; start the next poll as
        # soon as half the room is free instead of waiting for the daemon's next tick.
        self._poll_lock = asyncio.Lock()
        self._more_due = False
        self._closing = False
        self._top_up: asyncio.Task[int] | None = None
        # When results cannot be written at all (database locked or full), every due domain would
        # be checked again at each poll, hammering the resolvers for nothing: no new checks start
        # before this monotonic time, the pause doubling while writes keep failing.
        self._paused_until = 0.0
        self._pause = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def poll(self) -> int:
        """Start the checks that are due now; returns how many were started."""
        # Select at most two rounds of the concurrency ahead: the rest stays due in the table,
        # where a restart or another reconciler finds it.
        async with self._poll_lock:  # two polls at once could select the same rows
            return await self._poll()

    async def _poll(self) -> int:
        room = 2 * self._settings.check_concurrency - len(self._in_flight)
        if room <= 0 or time.monotonic() < self._paused_until:
            return 0
        due = await store.due_domains(
            self._db, self._clock(), room, exclude=frozenset(self._in_flight)
        )
        self._more_due = len(due) == room
        for domain in due:
            task = asyncio.create_task(self._guarded(domain), name=f"check {domain.hostname}")
            self._in_flight[domain.id] = task
            task.add_done_callback(functools.partial(self._finished, domain.id))
        return len(due)

    def _finished(self, domain_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(domain_id, None)
        if (
            self._more_due
            and not self._closing
            and (self._top_up is None or self._top_up.done())
            and len(self._in_flight) <= self._settings.check_concurrency
        ):
            self._more_due = False
            self._top_up = asyncio.get_running_loop().create_task(self.poll(), name="dns top-up")
            self._top_up.add_done_callback(_log_failure)

    async def run_due(self) -> int:
        """Start the due checks and wait for them (and any already in flight) to finish."""
        started = await self.poll()
        await self.drain()
        return started

    async def drain(self) -> None:
        """Wait until no check is in flight, counting those a top-up starts meanwhile."""
        while self._in_flight or (self._top_up is not None and not self._top_up.done()):
            waiting: list[asyncio.Task[Any]] = [*self._in_flight.values()]
            if self._top_up is not None:
                waiting.append(self._top_up)
            await asyncio.gather(*waiting, return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """Let running checks finish (they write their results), cancel the rest after `grace` s."""
        self._closing = True
        if self._top_up is not None:
            await asyncio.gather(self._top_up, return_exceptions=True)
        tasks = list(self._in_flight.values())
        if not tasks:
            await self._writer.close()
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._writer.close()

    async def _guarded(self, domain: Domain) -> None:
        try:
            await self.check_one(domain)
        except LeaseLost:
            # Another reconciler took the lease over while this check ran: its outcome was
            # refused (and logged once by the lease), and the row is the new holder's to check.
            return
        except Exception:
            log.exception("checking %s failed", domain.hostname)
            if self._on_error is not None:
                self._on_error()
            # Without this the row stays due and would be retried (and logged) every poll.
            try:
                await store.postpone_check(
                    self._db, domain, self._clock() + self._policy.fast_interval
                )
            except Exception:
                log.exception("could not postpone the check of %s", domain.hostname)
                self._pause_checks()

    def _pause_checks(self) -> None:
        now = time.monotonic()
        if now < self._paused_until:
            return  # another check of the same round failed: already paused
        self._pause = min(max(2 * self._pause, MIN_PAUSE), self._policy.fast_interval)
        self._paused_until = now + self._pause
        log.warning("DNS checks paused for %.1f s: results cannot be written", self._pause)

    async def check_one(self, domain: Domain) -> bool:
        """Check one domain now and write the outcome; False if it changed status meanwhile."""
        # The bound is on DNS work; the write joins the writer's next batch outside it.
        async with self._semaphore:
            report = await self._checker.check(expectation_for(domain, self._settings))
        now = self._clock()
        plan = plan_check(domain, report, now, self._policy)
        written = await self._writer.write(CheckOutcome(domain=domain, plan=plan, now=now))
        self._pause = 0.0
        self.checks_run += 1
        if not written:
            log.info("%s changed status during its check; checked again later", domain.hostname)
        elif plan.move is not None:
            move = plan.move
            log.info(
                "%s: %s → %s (%s)", domain.hostname, move.source, move.target, move.reason or "ok"
            )
        return written


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("topping up DNS checks failed", exc_info=task.exception())
