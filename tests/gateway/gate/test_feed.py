"""FeedReads: reads of the change feed take turns, and a writer waits for one begun after it."""

from __future__ import annotations

import asyncio

from gateway.gate.feed import FeedReads, Read
from tests.support.wait import await_until


class Reads:
    """A read that records its order and can be held on an event."""

    def __init__(self) -> None:
        self.begun: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def named(self, name: str, *, fail: bool = False) -> Read:
        async def read() -> int:
            self.begun.append(name)
            await self.gate.wait()
            if fail:
                raise OSError("the database went away")
            return 1

        return read


async def test_a_read_under_way_does_not_count_for_a_writer_who_came_later() -> None:
    feed, reads = FeedReads(), Reads()
    reads.gate.clear()
    follower = asyncio.create_task(feed.read(reads.named("follower")))
    await await_until(lambda: reads.begun == ["follower"], timeout=5, what="the follower's read")
    # Its snapshot may predate the writer's commit: the writer needs a read of its own after it.
    writer = asyncio.create_task(feed.since_now(reads.named("writer")))
    await asyncio.sleep(0)
    assert not writer.done()
    reads.gate.set()
    assert await follower == 1
    assert await writer is True
    assert reads.begun == ["follower", "writer"]


async def test_writers_waiting_together_share_one_read() -> None:
    feed, reads = FeedReads(), Reads()
    waits = [feed.since_now(reads.named(f"writer{n}")) for n in range(5)]
    assert await asyncio.gather(*waits) == [True] * 5
    assert reads.begun == ["writer0"]


async def test_a_failed_or_late_read_says_so_and_the_next_read_runs() -> None:
    feed, reads = FeedReads(patience=0.05), Reads()
    assert await feed.since_now(reads.named("failing", fail=True)) is False
    reads.gate.clear()
    assert await feed.since_now(reads.named("held")) is False
    reads.gate.set()
    assert await feed.read(reads.named("follower")) == 1
    assert reads.begun == ["failing", "held", "follower"]
