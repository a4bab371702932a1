"""The reconciler lease: one row in `leases` that lets a single reconciler work on a database.

A second reconciler started on the same file (a failover unit, or `domaingate up` started twice)
keeps renewing its claim but does no work while a live holder has the lease; it takes over
once the holder releases it on shutdown or stops renewing it for `ttl` seconds. A holder that
died without releasing it (SIGKILL, OOM) on this same host and in this same PID namespace is
known to be gone without waiting: its process no longer exists, so the lease is taken over at
once, and a reconciler restarted after a crash works from its first second.

The lease's time is the database's (`domaingate.store.leases`): the nodes' clocks never decide
who holds it. Locally a holder trusts its lease for `ttl` seconds of its own monotonic clock from
the moment it asked for it, which ends no later than the database's lease. Each take gives a
fencing token (`fence()`), which every write of the holder's jobs carries
(`domaingate.store.fencing`); a write refused for a stale token ends the holding at once
(`lost()`), and the process stands by.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from domaingate.store import leases as store
from domaingate.store.abc import Database
from domaingate.store.errors import StoreUnreachable
from domaingate.store.fencing import Fence
from domaingate.store.leases import RECONCILER_LEASE, Held
from domaingate.store.runs import short_error

log = logging.getLogger(__name__)


def _pid_namespace() -> str:
    """This process's PID namespace (its inode), or "" where /proc does not tell."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return "".join(char for char in link if char.isdigit())


def new_holder_id() -> str:
    """Unique per process start; readable enough to tell an operator which host holds it, and
    naming the process (pid in its PID namespace) so that its death can be seen from this host."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_pid_namespace()}"


def died_here(holder: str) -> bool:
    """Whether `holder` was a process of this host and PID namespace that no longer exists."""
    parts = holder.split(":")
    if len(parts) != 4 or not parts[3] or not parts[1].isdigit():
        return False
    host, pid, _, namespace = parts
    if host != socket.gethostname() or namespace != _pid_namespace() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists (another user's, perhaps): alive as far as we can tell
    # Alive, or its pid reused since: either way the lease lapses by itself after its ttl.
    return False


class Lease:
    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 30.0,
        holder: str | None = None,
        name: str = RECONCILER_LEASE,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError("the lease ttl must be positive")
        self.db = db
        self.ttl = ttl
        self.holder = holder or new_holder_id()
        self.name = name
        self._timer = timer
        self._trusted_until: float | None = None  # on `timer`'s clock
        self._token: int | None = None  # the fencing token of the latest take; None: not ours
        self._standby_logged = False
        self.error: str | None = None  # why the last renewal failed; None when it went through

    @property
    def renew_every(self) -> float:
        # A third of the ttl: two renewals may fail (a busy database) before the lease lapses.
        return self.ttl / 3

    @property
    def token(self) -> int | None:
        """The fencing token this process took the lease with (None: it holds none)."""
        return self._token

    def held(self) -> bool:
        """Whether work may start now: the lease was taken and has not expired since."""
        return self._trusted_until is not None and self._timer() < self._trusted_until

    def fence(self) -> Fence | None:
        """What this holder's writes carry; None once the lease is known to be another's.

        A lease that only lapsed here (renewals failing) keeps its token: the database judges
        whether it is still the lease's, and it is until another holder takes over."""
        if self._token is None:
            return None
        return Fence(name=self.name, holder=self.holder, token=self._token)

    def lost(self, token: int | None = None) -> None:
        """A write carrying `token` was refused: another holder took over. Stop at once, unless
        the lease was taken again since with a newer token (the write was from before)."""
        if self._token is None or (token is not None and token != self._token):
            return
        log.warning(
            "the %s lease was taken over (token %s is no longer its own); standing by",
            self.name,
            self._token,
        )
        self._token = None
        self._trusted_until = None
        self._standby_logged = True

    async def renew(self) -> bool:
        """Take the lease, or renew it; True if this process holds it afterwards."""
        had = self.held()
        self.error = None
        asked_at = self._timer()
        try:
            taken = await store.take_lease(self.db, self.name, self.holder, self.ttl)
            if taken is None:
                taken = await self._take_from_the_dead()
        except Exception as exc:
            self.error = short_error(exc)
            # Keep what we had until it expires on its own; a busy database is not a lost lease.
            # A lost connection's message says it all; for anything else (locked, full, a bug)
            # the traceback says which failure it was and where.
            log.warning(
                "cannot renew the %s lease: %s",
                self.name,
                exc,
                exc_info=not isinstance(exc, StoreUnreachable),
            )
            return self.held()
        self._took(taken, asked_at)
        if taken is not None and not had:
            log.info("holding the %s lease as %s (token %d)", self.name, self.holder, taken.token)
            self._standby_logged = False
        elif taken is None and had:
            log.warning("lost the %s lease; standing by", self.name)
            self._standby_logged = True
        elif taken is None and not self._standby_logged:
            log.info("another reconciler holds the %s lease; standing by", self.name)
            self._standby_logged = True
        return taken is not None

    def _took(self, taken: Held | None, asked_at: float) -> None:
        if taken is None:
            self._token = None
            self._trusted_until = None
            return
        self._token = taken.token
        # The database dated the lease no earlier than the moment it was asked for.
        self._trusted_until = asked_at + self.ttl

    async def _take_from_the_dead(self) -> Held | None:
        holder = await store.lease_holder(self.db, self.name)
        if holder is None or not died_here(holder):
            return None
        log.warning(
            "the %s lease holder %s ended without releasing it; taking over", self.name, holder
        )
        await store.release_lease(self.db, self.name, holder)
        return await store.take_lease(self.db, self.name, self.holder, self.ttl)

    async def release(self) -> None:
        if self._token is None:
            return
        self._token = None
        self._trusted_until = None
        await store.release_lease(self.db, self.name, self.holder)
        log.info("released the %s lease", self.name)
