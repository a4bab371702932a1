"""Group commit of DNS check outcomes: the checks that finish while one write is under way go
into the next, in one transaction.

No timer and no batch size to tune for latency: the first outcome is written at once, and however
many arrive meanwhile are written together as soon as that write commits. Under load that turns a
transaction (and an fsync) per check into one per batch; when checks are rare each is written as
it comes.
"""

from __future__ import annotations

import asyncio
import logging

from domaingate.lifecycle.dns import CheckOutcome
from domaingate.store.abc import Database
from domaingate.store.checks import apply_checks

log = logging.getLogger(__name__)

# One transaction holds SQLite's write lock for its length: keep it short for the API's writers.
MAX_BATCH = 200


class CheckWriter:
    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: list[tuple[CheckOutcome, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.written = 0

    async def write(self, outcome: CheckOutcome) -> bool:
        """Write `outcome` with whatever else is queued; whether it was written (False: the
        domain changed status since it was read). Raises what the write raised."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="check writer")
        # Shielded: a check cancelled at shutdown must not cancel a batch holding other results.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for everything queued to be written."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                written = await apply_checks(self._db, [outcome for outcome, _ in batch])
            except Exception as exc:
                # The whole batch was rolled back: each of its checks reports the failure.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                        # Marked as seen: a check cancelled at shutdown no longer awaits it.
                        future.add_done_callback(_retrieved)
                continue
            self.batches += 1
            self.written += sum(written)
            for (_, future), ok in zip(batch, written, strict=True):
                if not future.done():
                    future.set_result(ok)


def _retrieved(future: asyncio.Future[bool]) -> None:
    future.exception()
