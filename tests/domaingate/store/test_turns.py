"""A process's turns for lock keys (`domaingate.store.postgres.turns`): writers of a common key
take turns, writers of other keys do not wait, a turn not had within the timeout is StoreBusy,
and nothing is left behind by keys used once, by a timed-out or by a cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from domaingate.store.errors import StoreBusy
from domaingate.store.postgres.turns import Turns


async def test_a_common_key_takes_turns_and_others_do_not_wait() -> None:
    turns = Turns(timeout=5)
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with turns.of([(2, 1), (2, 7)]):
            order.append("first in")
            holding.set()
            await release.wait()
        order.append("first out")

    async def second() -> None:
        async with turns.of([(2, 7)]):
            order.append("second in")

    one = asyncio.create_task(first())
    await holding.wait()
    two = asyncio.create_task(second())
    async with turns.of([(1, 7), (2, 2)]):  # other keys: had while the first holds its own
        order.append("other in")
    release.set()
    await asyncio.gather(one, two)
    assert order == ["first in", "other in", "first out", "second in"]
    assert len(turns) == 0


async def test_a_turn_not_had_in_time_is_busy_and_leaves_nothing() -> None:
    turns = Turns(timeout=0.05)
    async with turns.of([(1, 1)]):
        with pytest.raises(StoreBusy):
            async with turns.of([(1, 0), (1, 1)]):
                pass
        assert len(turns) == 1
    assert len(turns) == 0


async def test_a_cancelled_waiter_leaves_nothing() -> None:
    turns = Turns(timeout=5)
    async with turns.of([(1, 1)]):
        waiter = asyncio.create_task(turns.of([(1, 1)]).__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(turns) == 0
    async with turns.of([(1, 1)]):  # and the key is free again
        pass
