"""Reads of the change feed, one at a time, and waiting for one that began after a write.

The gate's allowlist changes only through reads of the database's change feed (the SQLite
feed's rows past its sequence, PostgreSQL's change cursor): each read applies committed rows
in their order, and reads take turns, so no read applies a row older than one already applied.
A write made through this process's API must hold at its gate when the API answers. It does so by
waiting here for a read that began after the write had committed, never by putting its own copy
of the row into the allowlist: a copy taken before another writer's later change (a detach at
another edge, the operator's take-down, the reconciler's demotion) would undo that change after
the follower had applied it, and the gate would allow a removed name until the row changed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# How long an API write waits for its gate to apply it; past this the API answers anyway (the
# write has committed), and the follower applies it with its next read.
CATCH_UP_TIMEOUT = 3.0


# One read of the feed, applied to the allowlist; how many rows it read.
Read = Callable[[], Awaitable[int]]


class FeedReads:
    """Runs reads of one feed one at a time, numbering them as they begin. The follower and a
    waiting writer may read on different connections (PostgreSQL's follower holds its own while
    it listens); they share the one cursor, and take turns."""

    def __init__(self, *, patience: float = CATCH_UP_TIMEOUT) -> None:
        self._patience = patience
        self._turn = asyncio.Lock()
        self._begun = 0
        self._applied = 0  # the number of the latest read that completed
        self._shared: asyncio.Task[int] | None = None

    async def read(self, read: Read) -> int:
        """Run `read`, after any read under way has been applied."""
        async with self._turn:
            self._begun += 1
            number = self._begun
            rows = await read()
            self._applied = number
            return rows

    async def since_now(self, read: Read) -> bool:
        """Wait until a read that began after this call has been applied: then every write
        committed before the call holds in the allowlist. `read` is the read to run if none
        is under way for the writers already. False when none has been applied within the
        patience given, or the read failed (the follower's own reads go on, and apply it)."""
        wanted = self._begun + 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience
        while self._applied < wanted:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            shared = self._shared
            if shared is None or shared.done():
                # One read for every writer waiting meanwhile: a burst of writes costs a read
                # or two, not one each.
                shared = self._shared = asyncio.ensure_future(self.read(read))
                shared.add_done_callback(_retrieve)
            try:
                # Shielded: a writer giving up must not cancel a read others share, nor leave a
                # database connection in the middle of a query.
                await asyncio.wait_for(asyncio.shield(shared), remaining)
            except Exception:
                return False
        return True


def _retrieve(task: asyncio.Task[int]) -> None:
    # A failed shared read is the follower's to report (its own next read fails the same way);
    # retrieving the exception here keeps asyncio from logging it when no writer waited for it.
    if not task.cancelled():
        task.exception()
