"""The process-wide cap on DNS queries in flight: the limit itself (order, cancellation, one
event loop after another), then many checks of long names at once against knot, in a process
whose file descriptors are too few for all their queries at once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from domaingate.dns.inflight import MAX_QUERIES_IN_FLIGHT, QueryLimit
from tests.support.knot import Knot

ROOT = Path(__file__).resolve().parents[3]
ZONES = {"apps.test": "shop A 192.0.2.10\n", "acme.test": "* CNAME shop.apps.test.\n"}


async def hold(limit: QueryLimit, seconds: float, log: list[str], name: str) -> None:
    async with limit.slot():
        log.append(name)
        assert limit.in_flight <= limit.limit
        await asyncio.sleep(seconds)


async def test_no_more_than_the_limit_at_once_and_the_rest_in_arrival_order() -> None:
    limit = QueryLimit(3)
    log: list[str] = []
    await asyncio.gather(*(hold(limit, 0.01, log, f"q{i}") for i in range(30)))
    assert log == [f"q{i}" for i in range(30)]
    assert limit.peak == 3
    assert (limit.in_flight, limit.waiting) == (0, 0)


async def test_a_waiter_given_up_takes_no_slot_and_loses_none() -> None:
    limit = QueryLimit(1)
    log: list[str] = []
    first = asyncio.create_task(hold(limit, 0.05, log, "first"))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await hold(limit, 0, log, "impatient")
    assert limit.waiting == 0
    await first
    await hold(limit, 0, log, "later")
    assert log == ["first", "later"]
    assert (limit.in_flight, limit.peak) == (0, 1)


async def test_a_slot_handed_to_a_waiter_cancelled_meanwhile_goes_to_the_next() -> None:
    limit = QueryLimit(1)
    log: list[str] = []
    await limit.acquire(asyncio.get_running_loop().time() + 1)
    second = asyncio.create_task(hold(limit, 0, log, "second"))
    third = asyncio.create_task(hold(limit, 0, log, "third"))
    await asyncio.sleep(0)
    assert limit.waiting == 2
    limit.release()  # the slot is now handed to `second`...
    second.cancel()  # ...which gives up before it runs again
    await asyncio.gather(second, third, return_exceptions=True)
    assert second.cancelled()
    assert log == ["third"]
    assert (limit.in_flight, limit.waiting) == (0, 0)


async def test_acquire_waits_until_its_deadline_and_no_longer() -> None:
    limit = QueryLimit(1)
    loop = asyncio.get_running_loop()
    await limit.acquire(loop.time() + 1)
    with pytest.raises(TimeoutError):
        await limit.acquire(loop.time() + 0.01)
    assert (limit.in_flight, limit.waiting) == (1, 0)
    later = asyncio.create_task(limit.acquire(loop.time() + 5))
    await asyncio.sleep(0)
    assert limit.waiting == 1
    limit.release()
    await later  # the slot passed straight to the waiter
    assert (limit.in_flight, limit.waiting, limit.peak) == (1, 0, 1)
    limit.release()
    assert limit.in_flight == 0


async def test_release_soon_frees_the_slot_after_the_callbacks_already_queued() -> None:
    """A finished query's socket is closed by a callback asyncio queues as the query ends; the
    slot, which stands for that descriptor, is given back only after it."""
    limit = QueryLimit(1)
    loop = asyncio.get_running_loop()
    await limit.acquire(loop.time() + 1)
    seen: list[int] = []
    loop.call_soon(lambda: seen.append(limit.in_flight))  # queued first, like the close
    limit.release_soon()
    assert limit.in_flight == 1
    await asyncio.sleep(0)
    assert seen == [1]
    assert limit.in_flight == 0


def test_one_limit_serves_one_event_loop_after_another() -> None:
    """The process-wide limit outlives a loop: one whose run ended with waiters queued (they
    are cancelled then) leaves the next loop every slot."""
    limit = QueryLimit(4)
    log: list[str] = []

    async def many(prefix: str, count: int) -> None:
        await asyncio.gather(*(hold(limit, 0.002, log, f"{prefix}{i}") for i in range(count)))

    async def abandoned() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(limit.limit):
            await limit.acquire(loop.time() + 5)
        # All held, with more queued behind them, when this loop's run ends.
        queued = [loop.create_task(limit._acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        assert limit.waiting == len(queued)

    asyncio.run(many("a", 50))
    asyncio.run(abandoned())
    assert limit.waiting == 0  # cancelled as their run ended
    for _ in range(limit.limit):
        limit.release()  # the abandoned run's own slots
    asyncio.run(many("b", 50))
    assert len(log) == 100
    assert limit.peak <= 4
    assert (limit.in_flight, limit.waiting) == (0, 0)


# --- the attack ----------------------------------------------------------------------------

# The cap plus room for the interpreter, its libraries and the loop: far fewer descriptors than
# the checks below would hold at once without the cap.
NOFILE = MAX_QUERIES_IN_FLIGHT + 64
CHECKS = 40  # x 2 resolvers x 19 queries = 1,520 at once, uncapped


@pytest.mark.knot
def test_many_checks_of_long_names_at_once_all_complete_with_few_descriptors(
    knot_factory: Callable[[Mapping[str, str]], Knot],
) -> None:
    resolvers = [str(knot_factory(ZONES).listen) for _ in range(2)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    flood = [sys.executable, "-m", "tests.domaingate.dns.flood", str(CHECKS), *resolvers]
    result = subprocess.run(
        ["prlimit", f"--nofile={NOFILE}:{NOFILE}", *flood],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["checks"] == CHECKS
    assert outcome["failures"] == []
    assert outcome["peak"] == MAX_QUERIES_IN_FLIGHT  # the checks queued at the cap
