"""The gate's follower: the one task that keeps the allowlist current, from the database's change
feed (`domaingate.store.abc.ChangeFeed`; SQLite's or PostgreSQL's, `feed_for`).

It loads every allowed domain at start-up, then reads the rows changed since, in order, whenever
the feed says something may have changed. A failed read is logged and counted, the feed's
connections are made again after a back-off with jitter (`domaingate.backoff`), and the feed read
on from where it was: meanwhile the gate answers from what it has. Nothing else writes to the
allowlist: a write through this process's API waits for a read of its own commit (`caught_up`,
`gateway.gate.feed`).

A feed that has diverged (FeedDiverged: a failover to a server that lacks what the gate read, a
restored file) cannot be read on: everything is loaded again into a fresh map, which replaces the
old one in one assignment once complete. The gate keeps answering from the old one meanwhile,
never from an empty one, and keeps no name the new server does not allow.

A database that cannot be loaded at start does not stop the gate: it serves the snapshot of its
last view (`gateway.gate.snapshot`), or denies everything without one, and loads as soon as the
database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from domaingate import backoff
from domaingate.store.abc import ChangeFeed
from domaingate.store.backends import feed_for
from domaingate.store.errors import FeedDiverged, StoreUnavailable
from domaingate.targets import DatabaseTarget, PostgresServer, described
from gateway.gate.allowlist import Allowlist, Loading, Upstream
from gateway.gate.feed import FeedReads
from gateway.gate.snapshot import WRITE_EVERY, Origin, Snapshot, SnapshotRefused

log = logging.getLogger(__name__)

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
        snapshot: Snapshot | None = None,
        writes_snapshot: bool = True,
    ) -> None:
        self.feed = feed
        self._allowlist = allowlist
        self._upstream = upstream
        self._described = described_as
        self._on_error = on_error
        self._snapshot = snapshot
        self._writes_snapshot = writes_snapshot and snapshot is not None
        self._reads = FeedReads()
        self._counts: tuple[float, dict[str, int]] | None = None
        self._counting: asyncio.Future[dict[str, int]] | None = None
        # Set when what the allowlist holds is not (or no longer) a view of the feed's
        # server: a snapshot served during an outage, or a divergence. The next read loads.
        self._needs_load = True
        self._changed_at = 0.0  # monotonic time of the last change not in a snapshot yet
        self._written_at = float("-inf")
        self._writing: asyncio.Task[None] | None = None
        self.errors = 0
        self.loads = 0  # from the database: the first, then one per divergence or outage start

    @classmethod
    def of(
        cls,
        db: DatabaseTarget,
        allowlist: Allowlist,
        upstream: Upstream,
        *,
        read: PostgresServer | None = None,
        on_error: Callable[[], object] | None = None,
        snapshot: Snapshot | None = None,
        writes_snapshot: bool = True,
    ) -> Follower:
        """The follower of settings.db (from settings.db_read, its standby, if `read`)."""
        return cls(
            feed_for(db, read=read),
            allowlist,
            upstream,
            described_as=described(db if read is None else read),
            on_error=on_error,
            snapshot=snapshot,
            writes_snapshot=writes_snapshot,
        )

    async def open(self) -> None:
        """Load the allowlist from the database; if it cannot be reached, from the snapshot
        (or not at all: the gate denies until a later read loads it)."""
        try:
            await self._reads.read(self._load)
        except StoreUnavailable as exc:
            log.warning("cannot load the allowlist from %s: %s", self._described, exc)
            self._restore()

    def _restore(self) -> None:
        if self._snapshot is None:
            log.warning("no gate snapshot: denying every name until %s answers", self._described)
            return
        try:
            hosts, origin = self._snapshot.read()
        except SnapshotRefused as exc:
            log.warning(
                "gate snapshot %s not used: %s; denying every name until %s answers",
                self._snapshot.path,
                exc,
                self._described,
            )
            return
        allowlist = self._allowlist
        allowlist.restore(hosts)
        allowlist.last_seq = origin.seq
        age = max(0.0, time.time() - origin.synced_at)
        allowlist.synced_at = time.monotonic() - age
        allowlist.source = "snapshot"
        allowlist.loaded = True
        log.warning(
            "serving %d hostnames from the gate snapshot %s (%.0f s old, server %s) until %s "
            "answers",
            len(hosts),
            self._snapshot.path,
            age,
            origin.identity or "unknown",
            self._described,
        )

    async def _load(self) -> int:
        """Everything, into a fresh map that replaces the held one once complete."""
        fresh = Allowlist()
        loading = Loading(fresh, self._upstream)
        await self.feed.load(loading.apps, loading.chunk)
        allowlist = self._allowlist
        allowlist.replace(fresh)
        allowlist.last_seq = self.feed.seq
        allowlist.synced_at = time.monotonic()
        allowlist.source = "database"
        allowlist.loaded = True
        self.loads += 1
        self._needs_load = False
        self._changed_at = time.monotonic()
        return len(fresh)

    async def close(self) -> None:
        try:
            await self._write_snapshot(final=True)
        finally:
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
        if self._needs_load:
            return await self._load()
        return self._apply(await self.feed.changes())

    async def _read_aside(self) -> int:
        if self._needs_load:
            return await self._load()
        return self._apply(await self.feed.changes(aside=True))

    def _apply(self, rows: list[tuple[int, str, str, str, str | None, str, int, int]]) -> int:
        for row in rows:
            self._allowlist.take(row, self._upstream)
        self._allowlist.last_seq = self.feed.seq
        self._allowlist.synced_at = time.monotonic()
        if rows:
            self._changed_at = time.monotonic()
        return len(rows)

    async def run(self) -> None:
        """Follow until cancelled."""
        attempt = 0
        while True:
            try:
                await self.poll()
                attempt = 0
                self._snapshot_if_due()
                await self.feed.wait()
                continue
            except FeedDiverged as exc:
                self._needs_load = True
                log.warning(
                    "the gate's view of %s has diverged: %s; loading everything again",
                    self._described,
                    exc,
                )
            except Exception as exc:
                log.warning("cannot follow domain changes in %s: %s", self._described, exc)
            self.errors += 1
            if self._on_error is not None:
                self._on_error()
            with contextlib.suppress(Exception):
                await self.feed.reset()
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1

    def _snapshot_if_due(self) -> None:
        if (
            self._writes_snapshot
            and self._allowlist.source == "database"
            and self._changed_at > self._written_at
            and time.monotonic() - self._written_at >= WRITE_EVERY
            and (self._writing is None or self._writing.done())
        ):
            self._writing = asyncio.create_task(self._write_snapshot(), name="gate-snapshot")

    async def _write_snapshot(self, *, final: bool = False) -> None:
        """Write the allowlist's snapshot if it holds changes the last one lacks: in a thread,
        from a copy, so the gate goes on answering (and changing) meanwhile."""
        if final and self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)
        allowlist, snapshot = self._allowlist, self._snapshot
        if not self._writes_snapshot or snapshot is None or allowlist.source != "database":
            return
        if not allowlist.loaded or self._changed_at <= self._written_at:
            return
        started = time.monotonic()
        origin = Origin(
            database=snapshot.database,
            identity=self.feed.identity,
            seq=allowlist.last_seq,
            synced_at=time.time() - (started - allowlist.synced_at),
        )
        try:
            await asyncio.to_thread(snapshot.write, allowlist.entries(), origin)
        except OSError as exc:
            log.warning("cannot write the gate snapshot %s: %s", snapshot.path, exc)
        self._written_at = started


def _retrieve(future: asyncio.Future[dict[str, int]]) -> None:
    # A failed shared count is each waiting scrape's to report; retrieved here, asyncio does not
    # log it again when every scrape waiting for it has gone.
    if not future.cancelled():
        future.exception()
