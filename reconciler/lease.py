"""The reconciler lease: one row in `leases` that lets a single reconciler work on a database.

A second reconciler started on the same file (a failover unit, or `domaingate up` started twice)
keeps renewing its claim but does no work while a live holder has the lease; it takes over
once the holder releases it on shutdown or stops renewing it for `ttl` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from gateway.store import reconcile as store
from gateway.store.database import Clock, Database

log = logging.getLogger(__name__)

LEASE_NAME = "reconciler"


def new_holder_id() -> str:
    """Unique per process start; readable enough to tell an operator which host holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        ttl: float = 30.0,
        holder: str | None = None,
        name: str = LEASE_NAME,
    ) -> None:
        if not ttl > 0:
            raise ValueError("the lease ttl must be positive")
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self.holder = holder or new_holder_id()
        self.name = name
        self._expires_at: float | None = None
        self._standby_logged = False

    @property
    def renew_every(self) -> float:
        # A third of the ttl: two renewals may fail (a busy database) before the lease lapses.
        return self.ttl / 3

    def held(self) -> bool:
        """Whether work may run now: the lease was taken and has not expired since."""
        return self._expires_at is not None and self.clock() < self._expires_at

    async def renew(self) -> bool:
        """Take the lease, or renew it; True if this process holds it afterwards."""
        had = self.held()
        try:
            self._expires_at = await store.take_lease(
                self.db, self.name, self.holder, self.clock(), self.ttl
            )
        except Exception as exc:
            # Keep what we had until it expires on its own; a busy database is not a lost lease.
            log.warning("cannot renew the %s lease: %s", self.name, exc)
            return self.held()
        if self._expires_at is not None and not had:
            log.info("holding the %s lease as %s", self.name, self.holder)
            self._standby_logged = False
        elif self._expires_at is None and had:
            log.warning("lost the %s lease; standing by", self.name)
            self._standby_logged = True
        elif self._expires_at is None and not self._standby_logged:
            log.info("another reconciler holds the %s lease; standing by", self.name)
            self._standby_logged = True
        return self._expires_at is not None

    async def release(self) -> None:
        if self._expires_at is None:
            return
        self._expires_at = None
        await store.release_lease(self.db, self.name, self.holder)
        log.info("released the %s lease", self.name)
