"""One edge's certificate storage, reported to the database: every reconciler of a fleet, lease
holder or not, scans its own edge's Caddy storage and writes what it holds
(`domaingate.store.edges`); the lease holder plans from the union of every edge's report.

Caddy's standard build has only `file_system` storage, so each edge usually has a storage of its
own, and a certificate Caddy obtained on one edge exists there only. Edges may also mount one
shared directory: the first scanner writes a random identity into its root
(`domaingate-storage-id`), and a lease per identity lets one reconciler at a time scan, report
and clean that storage, so nothing in it is read or deleted twice. Its writes (the report, the
clean-up's word) carry that lease's fencing token (`fenced`): a reconciler that froze between its
scan and its report, and woke after another edge took the storage over, has its report refused
rather than writing an older scan over the new holder's. A storage whose root does not exist yet
(Caddy makes it with its first certificate, and domaingate must not make it for Caddy, under
another owner) holds nothing: the edge reports it empty under an identity of its own (`absent:`
and the edge's name) until the root appears.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from domaingate.store import edges as store
from domaingate.store.abc import Database
from domaingate.store.errors import LeaseLost
from domaingate.store.fencing import Fence, FencedDatabase
from domaingate.times import Clock
from reconciler.certificates.storage import (
    CertScanner,
    ErrorHook,
    StorageUnreadable,
    StoredCerts,
    read_file,
)
from reconciler.lease import Lease

log = logging.getLogger(__name__)

IDENTITY_FILE = "domaingate-storage-id"
STORAGE_LEASE_PREFIX = "storage:"
ABSENT_PREFIX = "absent:"


def storage_identity(storage: Path) -> str | None:
    """The identity written in `storage`'s root, written first if there is none; None while the
    root does not exist. Blocking.

    Written to a file of its own, then linked into place: link() fails if the name exists, so of
    edges starting together on one shared storage exactly one identity wins, and nobody ever
    reads a half-written one. OSError when the root cannot be read or written.
    """
    path = storage / IDENTITY_FILE
    try:
        return _read_identity(path)
    except FileNotFoundError:
        if not storage.is_dir():
            return None
    temp = storage / f".{IDENTITY_FILE}.{uuid.uuid4().hex}"
    temp.write_text(uuid.uuid4().hex + "\n", encoding="ascii")
    try:
        os.link(temp, path)
    except FileExistsError:
        pass  # another scanner's won
    finally:
        temp.unlink()
    return _read_identity(path)


def _read_identity(path: Path) -> str:
    text = read_file(str(path))[:64].decode("ascii", "replace").strip()
    if not text or not text.isalnum():
        raise OSError(f"{path} holds no storage identity")
    return text


class EdgeStorage:
    """This edge's storage: its identity, its lease, its scanner and what it last reported."""

    def __init__(
        self,
        db: Database,
        storage: Path,
        edge: str,
        clock: Clock,
        *,
        lease_ttl: float = 30.0,
        holder: str | None = None,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.edge = edge
        self.clock = clock
        self.scanner = CertScanner(storage, on_error=on_error)
        self._lease_ttl = lease_ttl
        self._holder = holder
        self.identity: str | None = None
        self.lease: Lease | None = None
        # What this process reported last; None until it has read the storage's rows once.
        self._reported: dict[str, store.Held] | None = None
        self._identity_failing = False

    def held(self) -> bool:
        """Whether this process scans, reports and cleans the storage now."""
        return self.lease is not None and self.lease.held()

    def fenced(self, db: Database) -> Database:
        """`db` with each write checked, in its transaction, against the storage lease's token."""
        return FencedDatabase(db, self._fence, on_refused=self._lost, idle_timeout=self._lease_ttl)

    def _fence(self) -> Fence | None:
        return self.lease.fence() if self.lease is not None else None

    def _lost(self, exc: LeaseLost) -> None:
        if self.lease is not None:
            self.lease.lost(exc.token)
        self._reported = None  # another process reports it now: read its rows when back

    async def renew(self) -> bool:
        """Say this edge is alive, and take or renew the storage's lease; True if held."""
        if self.lease is None or self._absent():
            try:
                identity = await asyncio.to_thread(storage_identity, self.storage)
            except OSError as exc:
                if not self._identity_failing:
                    log.warning("cannot identify the storage %s: %s", self.storage, exc)
                    self._identity_failing = True
                return False
            self._identity_failing = False
            identity = identity or ABSENT_PREFIX + self.edge
            if identity != self.identity:
                await self._switch(identity)
        assert self.identity is not None and self.lease is not None
        await store.edge_seen(self.db, self.edge, self.identity, self.clock())
        held = await self.lease.renew()
        if not held:
            self._reported = None  # another process reports it now: read its rows when back
        return held

    def _absent(self) -> bool:
        return self.identity is not None and self.identity.startswith(ABSENT_PREFIX)

    async def _switch(self, identity: str) -> None:
        """Report as `identity` from now on (the storage's root appeared: its own identity)."""
        if self.lease is not None:
            await self.release()
        if self._absent():
            assert self.identity is not None
            await store.forget_storage(self.db, self.identity)
        self.identity = identity
        self._reported = None
        self.lease = Lease(
            self.db,
            ttl=self._lease_ttl,
            holder=self._holder,
            name=STORAGE_LEASE_PREFIX + identity,
        )

    async def report(self) -> StoredCerts | None:
        """Scan the storage and report it, if this process holds its lease; what it found, or
        None when it did not scan (another edge's reconciler scans this storage, or it cannot
        be read: StorageUnreadable is logged and counted by the scanner)."""
        # An absent storage is looked for again at every scan: its root appears with Caddy's
        # first certificate, which must count from that scan on.
        if (self._absent() or not self.held()) and not await self.renew():
            return None
        assert self.identity is not None
        try:
            found = await asyncio.to_thread(self.scanner.scan)
        except StorageUnreadable:
            return None
        if self._reported is None:
            self._reported = await store.storage_rows(self.db, self.identity)
        now: dict[str, store.Held] = dict(found.certs)
        # Within one storage a name it could not judge stays unknown, as it always has.
        now.update(dict.fromkeys(found.unknown))
        before = self._reported
        changed = {
            name: held
            for name, held in now.items()
            if name not in before or not _same(before[name], held)
        }
        gone = before.keys() - now.keys()
        try:
            await store.report(
                self.fenced(self.db),
                self.identity,
                self.edge,
                self.clock(),
                changed=changed,
                gone=gone,
            )
        except LeaseLost:
            log.warning(
                "the storage %s is another reconciler's now: not reporting it", self.storage
            )
            return None
        self._reported = now
        return found

    def forget(self, hostname: str) -> None:
        """`hostname`'s rows of this storage were deleted (clean-up): not reported any more."""
        if self._reported is not None:
            self._reported.pop(hostname, None)

    async def keep(self) -> None:
        """`renew()` on the lease's schedule, between scans: a failure is logged, and the lease
        kept until it expires, as the reconciler's."""
        try:
            await self.renew()
        except Exception as exc:
            log.warning("cannot renew the lease of the storage %s: %s", self.storage, exc)

    async def release(self) -> None:
        if self.lease is None:
            return
        try:
            await self.lease.release()
        except Exception:
            # It lapses by itself after its ttl; another edge on this storage takes over then.
            log.exception("could not release the %s lease at stop", self.lease.name)


def _same(a: store.Held, b: store.Held) -> bool:
    """Whether two holdings write the same row (the path a scan found it at aside)."""
    if a is None or b is None:
        return a is b
    return (a.issuer, a.issuer_key, a.not_before, a.not_after, a.renewal_window) == (
        b.issuer,
        b.issuer_key,
        b.not_before,
        b.not_after,
        b.renewal_window,
    )
