"""The certificate job: report this edge's storage, plan every affected domain from what every
edge's storage holds, guard, apply.

One run scans and reports this edge's storage (`report`, over `storage`), reads the union of
every storage still reporting (`domaingate.store.edges`), plans with
`domaingate.lifecycle.certificates.plan_certs` either every live domain or only those whose plan
can have changed since the last scan (`scope`),
holds back the demotions of a mass loss (`mass_loss`), and writes what is left (`apply`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domaingate.lifecycle.certificates import CertChange, certified, mass_loss, plan_certs
from domaingate.models import Domain
from domaingate.store import certificates as store
from domaingate.store import edges
from domaingate.store.abc import Database
from domaingate.times import Clock
from reconciler.certificates.apply import apply_cert_changes
from reconciler.certificates.report import EdgeStorage
from reconciler.certificates.scope import FULL_EVERY, CertScope
from reconciler.certificates.storage import StoredCerts

log = logging.getLogger(__name__)

ErrorHook = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class ScanScope:
    """What the last certificate scan planned: every live domain (full) or only the affected."""

    full: bool
    planned: int  # changes planned


class CertJob:
    """The certificate job over this edge's storage and the database. `run()` once per scan
    interval: it reports the storage (`report()`) and plans (`plan()`).

    `on_error` hears the cause of every problem the scan meets (`unreadable`, `corrupt`,
    `mass_loss`): the daemon counts them in its metrics.
    """

    def __init__(
        self,
        db: Database,
        storage: Path | EdgeStorage,
        clock: Clock,
        *,
        expiring_days: float | None,
        full_every: float = FULL_EVERY,
        stale_after: float = edges.STALE_AFTER,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.expiring_days = expiring_days
        if not isinstance(storage, EdgeStorage):
            storage = EdgeStorage(db, storage, socket.gethostname(), clock, on_error=on_error)
        self.edge = storage
        self.storage = storage.storage
        self.scanner = storage.scanner
        self.stale_after = stale_after
        self.scope = CertScope(full_every=full_every)
        self.last_scan: ScanScope | None = None
        self._on_error = on_error

    async def run(self) -> int:
        """Report this edge's storage, then plan and apply once; how many domains were written."""
        await self.edge.report()
        return await self.plan()

    async def plan(self) -> int:
        """Plan and apply from every edge's report; returns how many domains were written."""
        # Read before the domains: what changes meanwhile has a later seq, seen next scan.
        seq = await store.max_seq(self.db)
        fleet = await edges.fleet_certs(self.db, since=self.clock() - self.stale_after)
        if fleet.storages == 0:
            # No storage has reported (none readable yet, or all gone quiet): no name can be
            # judged, so nothing is planned.
            return 0
        found = StoredCerts(certs=fleet.certs, unknown=fleet.unknown)
        full = self.scope.full_due()
        plan = self._plan_all if full else self._plan_changed
        holding, changes = await plan(found, self.clock())
        self.last_scan = ScanScope(full=full, planned=len(changes))
        loss = mass_loss(holding, changes)
        if loss is not None:
            if self._on_error is not None:
                self._on_error("mass_loss")
            log.error(
                "the certificate scan finds no certificate for %d of the %d active or expiring "
                "domains in the %d storages reporting (this edge's: %s); demoting none of them "
                "(is CADDY_STORAGE right, and mounted?)",
                loss.gone,
                loss.certified,
                fleet.storages,
                self.storage,
            )
            changes = [change for change in changes if not change.loses_certificate]
        result = await apply_cert_changes(self.db, changes, self.clock)
        if loss is not None:
            self.scope.forget()  # the held-back domains must be planned again
        else:
            self.scope.done(found.certs, found.unknown, seq=seq, full=full)
        return result.applied

    async def _plan_all(self, found: StoredCerts, now: float) -> tuple[int, list[CertChange]]:
        """(active and expiring domains, changes) over every live domain."""
        holding, changes = 0, []
        # Page by page: the reads take turns with the DNS schedule's, and the planning (pure
        # CPU) gives the event loop back between pages.
        async for page in store.live_domain_pages(self.db):
            holding += certified(page)
            changes += plan_certs(page, found.certs, now, self.expiring_days, unknown=found.unknown)
        return holding, changes

    async def _plan_changed(self, found: StoredCerts, now: float) -> tuple[int, list[CertChange]]:
        """(active and expiring domains, changes) over the domains whose plan can have changed
        since the last scan (reconciler.certificates.scope)."""
        affected: dict[int, Domain] = {}
        for domains in (
            await store.live_named(self.db, self.scope.changed_names(found.certs, found.unknown)),
            await store.live_changed_since(self.db, self.scope.last_seq),
            await store.active_due_by(self.db, now),
        ):
            affected.update((domain.id, domain) for domain in domains)
        holding = await store.count_certified(self.db)
        days = self.expiring_days
        changes = plan_certs(affected.values(), found.certs, now, days, unknown=found.unknown)
        return holding, changes
