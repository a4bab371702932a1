"""The process-wide cap on DNS queries in flight.

Each query holds a socket of its own until its answer comes. One check asks every resolver for
A, AAAA, NS, TXT and CAA at the name and each parent, all at once (up to 20 queries per resolver
for a name of 16 labels), and the gateway's verifies and the reconciler's checks run side by side.
Without a cap, enough of them at once take every file descriptor the process may open: queries
then fail with "Too many open files", and the gateway's listeners cannot accept a connection,
the gate's included. So every query first takes a slot of `QUERIES`; when all are taken it waits
its turn, first come first served, within its check's budget, and checks queue rather than fail.

`MAX_QUERIES_IN_FLIGHT` leaves room for everything else under the usual soft limit of 1,024
descriptors (listeners, clients, the database); the systemd units raise that limit further
(LimitNOFILE). A resolver that answers takes well under a slot-second per query, so the cap
costs nothing until hundreds of queries are asked at once.

Every process of domaingate runs one event loop, where the count needs no lock: a slot freed
goes straight to the first waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

MAX_QUERIES_IN_FLIGHT = 256


class QueryLimit:
    """At most `limit` holders at once in this process; the others wait in arrival order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the limit must be at least 1")
        self.limit = limit
        self._in_flight = 0
        self._peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Slots held right now (a slot handed to a waiter counts as held)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def peak(self) -> int:
        """The most slots ever held at once."""
        return self._peak

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; waits for one when all are taken."""
        await self._acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self, deadline: float) -> None:
        """Take a slot, waiting until the loop's time `deadline` at most (then TimeoutError).

        A query's own path: a free slot is taken without a timer or a context manager, which a
        reconciler asking hundreds of queries a second would otherwise pay on each.
        """
        if self._take():
            return
        async with asyncio.timeout_at(deadline):
            await self._acquire()

    def release(self) -> None:
        """Give back a slot taken with `acquire` (or pass it to the first waiter)."""
        self._release()

    def release_soon(self) -> None:
        """Give back a slot once the loop's callbacks already queued have run: asyncio closes a
        finished query's socket in one of those, and the slot stands for that descriptor."""
        asyncio.get_running_loop().call_soon(self._release)

    def _take(self) -> bool:
        # Never ahead of a waiter: a steady stream of new queries must not starve it.
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            return True
        return False

    async def _acquire(self) -> None:
        if self._take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            # Cancelled (a timeout, or the check was abandoned). Still queued: leave the queue.
            # Already handed a slot: pass it on, since no one else will release it.
            try:
                self._waiters.remove(waiter)
            except ValueError:
                if waiter.done() and not waiter.cancelled():
                    self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            # A waiter whose loop has ended (a finished test's) waits for nothing any more.
            if waiter.done() or waiter.get_loop().is_closed():
                continue
            waiter.set_result(None)
            return  # the slot passes to the waiter: the count stays as it is
        self._in_flight -= 1


QUERIES = QueryLimit(MAX_QUERIES_IN_FLIGHT)
