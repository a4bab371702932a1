"""A fenced database: the `Database` a lease holder's work writes through, whose every write
transaction first checks, inside itself, that the holder's fencing token is still the lease's.

A holder paused past its lease's end (a long GC, SIGSTOP, a frozen VM) wakes up believing it
still holds the lease, with work half done. Its writes then carry a token another holder has
replaced (`domaingate.store.leases`: each takeover adds one), and are refused before they run:
`LeaseLost` is raised inside the transaction, which rolls back, and `on_refused` hears of it.
The check and the write share the transaction, so there is no gap between them: on PostgreSQL
the lease row is locked FOR SHARE, a takeover's UPDATE of it waits for the transaction's end,
and a transaction that starts after the takeover sees the new token; on SQLite the transaction
holds the file's single write lock, which the takeover needs too. Reads pass through unchanged
(a stale read can only lead to a write, and that write is checked).

On PostgreSQL a fenced transaction also ends its session when it sits idle inside the
transaction for `idle_timeout` seconds: a holder frozen between two statements would otherwise
keep its locks (the lease row's, the write lock) and stall every other writer, the takeover
among them, for as long as it stays frozen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from domaingate.store import leases
from domaingate.store.abc import Connection, Database, Reader
from domaingate.store.errors import LeaseLost
from domaingate.store.scopes import Scope
from domaingate.targets import DatabaseTarget


@dataclass(frozen=True, slots=True, kw_only=True)
class Fence:
    """What a holder's writes carry: the lease, who holds it, and the token it was taken with."""

    name: str
    holder: str
    token: int


class FencedDatabase(Database):
    """`inner` with every write checked against `fence()` (None: no lease held, refused).

    The inner database stays its opener's: closing this one closes nothing.
    """

    def __init__(
        self,
        inner: Database,
        fence: Callable[[], Fence | None],
        *,
        on_refused: Callable[[LeaseLost], object] | None = None,
        idle_timeout: float = 30.0,
    ) -> None:
        self._inner = inner
        self._fence = fence
        self._on_refused = on_refused
        self._idle_timeout_ms = max(1, int(idle_timeout * 1000))

    @property
    def target(self) -> DatabaseTarget:
        return self._inner.target

    @property
    def reader(self) -> Reader:
        return self._inner.reader

    async def schema_version(self) -> int:
        return await self._inner.schema_version()

    async def close(self) -> None:
        return None

    @asynccontextmanager
    async def write(self, *scopes: Scope) -> AsyncIterator[Connection]:
        fence = self._fence()
        if fence is None:
            raise self._refused(LeaseLost("this process holds no lease: the write is refused"))
        # The lease row is read FOR SHARE below, so a fenced write need not lock it as a scope.
        async with self._inner.write(*scopes) as conn:
            if not await leases.token_holds(
                conn,
                self.target,
                fence.name,
                fence.holder,
                fence.token,
                idle_timeout_ms=self._idle_timeout_ms,
            ):
                raise self._refused(
                    LeaseLost(
                        f"the {fence.name} lease's token is no longer {fence.token}: another"
                        " holder took over, and the write is refused",
                        token=fence.token,
                    )
                )
            yield conn

    def _refused(self, exc: LeaseLost) -> LeaseLost:
        if self._on_refused is not None:
            self._on_refused(exc)
        return exc
