"""The gate's follower: the one task that keeps the allowlist current, from the database's change
feed (`domaingate.store.abc.ChangeFeed`; SQLite's or PostgreSQL's, `feed_for`).

It loads every allowed domain at start-up, then reads the rows changed since, in order, whenever
the feed says something may have changed. A failed read is logged and counted, the feed's
connections are made again, and the feed read on from where it was: meanwhile the gate answers
from what it has. A feed that raises FeedDiverged (its source started over) is loaded again in
full, into a fresh allowlist that replaces the old one: no row of the old history is kept.
Nothing else writes to the allowlist: a write through this process's API waits for a read of
its own commit (`caught_up`, `gateway.gate.feed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from domaingate.store.abc import ChangeFeed
from domaingate.store.backends import feed_for
from domaingate.store.errors import FeedDiverged
from domaingate.targets import DatabaseTarget, PostgresServer, described
from gateway.gate.allowlist import Allowlist, Loading, Upstream
from gateway.gate.feed import FeedReads

log = logging.getLogger(__name__)

RECONNECT_DELAY = 0.5
# /metrics' counts by status are read at most this often: every scrape reads the whole table,
# and the internal listener takes scrapes from any local process.
COUNTS_MAX_AGE = 1.0


class Follower:
    """Loads the allowlist and follows the database's changes."""

    def __init__(
        self,
        feed: ChangeFeed,
        allowlist: Allowlist,
        upstream: Upstream,
        *,
        described_as: str = "the database",
        on_error: Callable[[], object] | None = None,
    ) -> None:
        self.feed = feed
        self._allowlist = allowlist
        self._upstream = upstream
        self._described = described_as
        self._on_error = on_error
        self._reads = FeedReads()
        self._counts: tuple[float, dict[str, int]] | None = None
        self._counting: asyncio.Future[dict[str, int]] | None = None
        self.errors = 0

    @classmethod
    def of(
        cls,
        db: DatabaseTarget,
        allowlist: Allowlist,
        upstream: Upstream,
        *,
        read: PostgresServer | None = None,
        on_error: Callable[[], object] | None = None,
    ) -> Follower:
        """The follower of settings.db (from settings.db_read, its standby, if `read`)."""
        feed = feed_for(db, read=read)
        where = described(db if read is None else read)
        return cls(feed, allowlist, upstream, described_as=where, on_error=on_error)

    async def open(self) -> None:
        loading = Loading(self._allowlist, self._upstream)
        await self.feed.load(loading.apps, loading.chunk)
        self._allowlist.last_seq = self.feed.seq
        self._allowlist.loaded = True
        self._allowlist.synced_at = time.monotonic()

    async def close(self) -> None:
        await self.feed.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Follower]:
        """Load the allowlist, then follow the database's changes until the context ends."""
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        task = asyncio.create_task(self.run(), name="gate-follower")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.close()

    async def count_by_status(self) -> dict[str, int]:
        """Domains by status, for /metrics: once the allowlist is loaded (before, the feed has
        no connections, and /metrics does not open one). Scrapes at once share one read, and a
        read serves those of the next `COUNTS_MAX_AGE` seconds, so no number of scrapes costs
        the database more than a read a second."""
        if not self._allowlist.loaded:
            raise RuntimeError("the gate has not loaded its allowlist yet")
        if self._counts is not None and time.monotonic() - self._counts[0] < COUNTS_MAX_AGE:
            return self._counts[1]
        if self._counting is None or self._counting.done():
            self._counting = asyncio.ensure_future(self._count())
            self._counting.add_done_callback(_retrieve)
        return await asyncio.shield(self._counting)

    async def _count(self) -> dict[str, int]:
        counts = await self.feed.count_by_status()
        self._counts = (time.monotonic(), counts)
        return counts

    async def poll(self) -> int:
        """Apply changes committed since the last read; returns how many rows were read."""
        return await self._reads.read(self._read)

    async def caught_up(self) -> bool:
        """Wait (bounded) until every change committed before the call holds in the allowlist;
        False if it does not yet (`gateway.gate.feed`)."""
        return await self._reads.since_now(self._read_aside)

    async def _read(self) -> int:
        return self._apply(await self.feed.changes())

    async def _read_aside(self) -> int:
        return self._apply(await self.feed.changes(aside=True))

    def _apply(self, rows: list[tuple[int, str, str, str, str | None, str, int, int]]) -> int:
        for row in rows:
            self._allowlist.take(row, self._upstream)
        self._allowlist.last_seq = self.feed.seq
        self._allowlist.synced_at = time.monotonic()
        return len(rows)

    async def _reload(self) -> int:
        # Into an allowlist of its own, answering from the old one meanwhile: none of the old
        # rows is kept, since the feed's history is no longer what they were read from.
        fresh = Allowlist()
        loading = Loading(fresh, self._upstream)
        await self.feed.load(loading.apps, loading.chunk)
        self._allowlist.replace(fresh)
        self._apply([])
        return len(fresh)

    async def run(self) -> None:
        """Follow until cancelled; load everything again when the feed has diverged."""
        while True:
            try:
                await self.poll()
                await self.feed.wait()
            except FeedDiverged as exc:
                log.warning("%s started over (%s): loading everything again", self._described, exc)
                try:
                    await self._reads.read(self._reload)
                except Exception as failed:
                    await self._failed(failed)
            except Exception as exc:
                await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error()
        log.warning("cannot follow domain changes in %s: %s", self._described, exc)
        with contextlib.suppress(Exception):
            await self.feed.reset()
        await asyncio.sleep(RECONNECT_DELAY)


def _retrieve(future: asyncio.Future[dict[str, int]]) -> None:
    # A failed shared count is each waiting scrape's to report; retrieved here, asyncio does not
    # log it again when every scrape waiting for it has gone.
    if not future.cancelled():
        future.exception()
