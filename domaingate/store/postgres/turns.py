"""Turns within one process for the scopes' lock keys: of a process's writers that name a common
key, one at a time waits on the server's advisory lock, holding a pooled connection and one of
the process's writer places; the others wait here, holding neither.

Without it, writers queued on one hot key (one tenant's flood of attaches, all counting its
quota under its lock) would hold every writer place of the process while they wait for each
other, and every other tenant's write through that process would wait behind them. The keys are
those of `domaingate.store.scopes.keys`, taken in their one order, so two writers never hold one
each while waiting for the other's. A key's lock exists only while someone holds or awaits it:
names a tenant chooses leave nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from domaingate.store.errors import StoreBusy

Key = tuple[int, int]


class Turns:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        # key -> (its lock, how many writers hold or await it)
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def of(self, keys: list[Key]) -> AsyncIterator[None]:
        """Hold the process's turn of each of `keys` (sorted, each once); StoreBusy if they are
        not all had within the timeout, as for the server's lock."""
        held: list[Key] = []
        try:
            async with asyncio.timeout(self._timeout):
                for key in keys:
                    lock = self._enter(key)
                    try:
                        await lock.acquire()
                    except BaseException:
                        self._leave(key)
                        raise
                    held.append(key)
        except TimeoutError:
            self._release(held)
            raise StoreBusy("another write of this process holds the same lock") from None
        except BaseException:
            self._release(held)
            raise
        try:
            yield
        finally:
            self._release(held)

    def _enter(self, key: Key) -> asyncio.Lock:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        return lock

    def _leave(self, key: Key) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def _release(self, held: list[Key]) -> None:
        for key in reversed(held):
            self._locks[key][0].release()
            self._leave(key)
