"""Removal clean-up: delete a removed domain's certificates from every edge's Caddy storage, in
every issuer.

Each edge's reconciler deletes them from its own storage and says so (`clean_own_storage`); the
lease holder marks the domain cleaned only once every storage still reporting has said so
(`clean_removed`), so a certificate left on another edge is never forgotten.

Caddy serves a certificate it finds in storage after a restart without asking the gate, so a removed
domain's certificate directories must go. They are kept only when another claim the gate allows
(verified, active, expiring) holds the hostname: re-attached and proven again by its old tenant,
or by another after the cool-down, that claim's certificate is then the one in storage. A pending
or failed claim on the name, of any tenant (another tenant's `hostname_taken` claim among them),
keeps nothing: the gate refuses it, so Caddy must not serve a certificate for it either. Only a
name that had been verified is cleaned, never one in the platform zone or a reserved suffix. The
check of who holds the name, the deletion and `certs_cleaned_at` share one write transaction, so
a verification cannot slip in between the check and the deletion.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import socket
import stat as stat_mode
from dataclasses import dataclass
from pathlib import Path

from domaingate import hostnames
from domaingate.store import certificates as store
from domaingate.store import edges
from domaingate.store.abc import Connection, Database
from domaingate.store.errors import LeaseLost
from domaingate.store.scopes import Scope
from domaingate.times import Clock
from reconciler.certificates.report import EdgeStorage
from reconciler.certificates.storage import certificates_dir, issuer_dirs

log = logging.getLogger(__name__)

_NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(slots=True, kw_only=True)
class CleanupResult:
    cleaned: int = 0
    kept_live: int = 0
    kept_unproven: int = 0
    deleted_dirs: int = 0
    errors: int = 0
    waiting: int = 0  # deleted from some storages, not yet from every one


def _component(hostname: str) -> str:
    if not hostname or hostname in {".", ".."} or "/" in hostname or "\\" in hostname:
        # Hostnames are normalised before they are stored; this guards the rmtree below anyway.
        raise ValueError(f"refusing to build a storage path from {hostname!r}")
    return hostname


def cert_dirs(storage: Path, hostname: str) -> list[Path]:
    """The directories holding `hostname`'s certificate in every issuer directory."""
    _component(hostname)
    return [d / hostname for d in issuer_dirs(storage) if (d / hostname).is_dir()]


def delete_cert_dirs(storage: Path, hostname: str) -> int:
    """Delete them; returns how many. Blocking: run it in a thread.

    Nothing on the way is followed if it is a symbolic link. Each issuer directory is opened
    without following one, and `hostname` is deleted relative to that open directory: a link
    there is unlinked, never what it points at, and a directory swapped for a link after the
    listing leads nowhere. (`shutil.rmtree` itself never follows links inside the tree.)
    """
    _component(hostname)
    deleted = 0
    try:
        # The storage root as configured: a link there is the operator's choice.
        root = os.open(certificates_dir(storage), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        for issuer_dir in issuer_dirs(storage):
            try:
                issuer_fd = os.open(issuer_dir.name, _NO_FOLLOW_DIR, dir_fd=root)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                log.warning("not following %s: it is no longer a directory", issuer_dir)
                continue
            try:
                deleted += _delete_in(issuer_fd, hostname, issuer_dir / hostname)
            finally:
                os.close(issuer_fd)
    finally:
        os.close(root)
    return deleted


def _delete_in(issuer_fd: int, hostname: str, shown: Path) -> int:
    try:
        found = os.stat(hostname, dir_fd=issuer_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if stat_mode.S_ISLNK(found.st_mode):
        os.unlink(hostname, dir_fd=issuer_fd)
    elif stat_mode.S_ISDIR(found.st_mode):
        shutil.rmtree(hostname, dir_fd=issuer_fd)
    else:
        return 0  # a file named like the domain is not a certificate directory
    log.info("deleted %s from Caddy's storage", shown)
    return 1


async def clean_own_storage(
    db: Database, edge: EdgeStorage, clock: Clock, *, reserved_zones: tuple[str, ...] = ()
) -> CleanupResult:
    """This edge's part: delete the certificates of removed domains that had been verified from
    this edge's storage, and say so (`domaingate.store.edges.drop_certificate`). A claim nobody
    proved got no certificate through domaingate, so whatever is stored under its name belongs to
    someone else (the operator's own site in the same storage, say) and stays. Done by whichever
    reconciler holds the storage's lease, so a shared storage is cleaned once."""
    result = CleanupResult()
    if not edge.held() and not await edge.renew():
        return result
    assert edge.identity is not None
    # The storage's lease orders who deletes from it: its token checked in each transaction.
    fenced = edge.fenced(db)
    # And the removals marked cleaned while this storage was not counted (its edge silent past
    # EDGE_STALE_AFTER): their copies here would be served again after a Caddy restart.
    late = await store.removals_still_stored(db, edge.identity)
    marked = {domain.id for domain in late}
    for domain in [*await store.uncleaned_removals(db), *late]:
        if domain.verified_at is None or hostnames.is_reserved(domain.hostname, reserved_zones):
            continue  # nothing to delete: the lease holder marks it cleaned
        try:
            # The name's lock: no rival claim on it can be verified while its certificates go.
            async with fenced.write(Scope.hostname(domain.hostname)) as conn:
                if await store.hostname_is_held(conn, domain.hostname):
                    continue  # the holder's certificate now; the lease holder marks it cleaned
                if await edges.said_cleaned(conn, edge.identity, domain.id, domain.hostname):
                    continue  # done here; other edges' storages still hold it
                result.deleted_dirs += await asyncio.to_thread(
                    delete_cert_dirs, edge.storage, domain.hostname
                )
                await edges.drop_certificate(
                    conn, edge.identity, domain.hostname, domain.id, clock()
                )
                if domain.id in marked:
                    # Marked cleaned already: nobody waits for this word, nor would forget it.
                    await edges.forget_cleanups(conn, domain.id)
            edge.forget(domain.hostname)
            result.cleaned += 1
        except LeaseLost:
            if edge.held():
                raise  # the reconciler's lease, not the storage's: the daemon stands by
            log.warning("the storage %s is another reconciler's now: not cleaning it", edge.storage)
            break
        except (OSError, ValueError) as exc:
            # Not said, so the domain stays uncleaned and the next run tries again (after the
            # operator fixes permissions).
            result.errors += 1
            log.warning("cannot delete the certificates of %s: %s", domain.hostname, exc)
    return result


async def clean_removed(
    db: Database,
    storage: Path | EdgeStorage,
    clock: Clock,
    *,
    reserved_zones: tuple[str, ...] = (),
    stale_after: float = edges.STALE_AFTER,
) -> CleanupResult:
    """The lease holder's clean-up: its own storage's part first (`clean_own_storage`), then
    mark cleaned each removed domain that needs no deletion (never proven, reserved, or held by
    another claim) or whose certificate every storage still reporting has said is gone. A
    storage given as a path is cleaned through an `EdgeStorage` of its own for this call."""
    own = (
        storage
        if isinstance(storage, EdgeStorage)
        else EdgeStorage(db, storage, socket.gethostname(), clock)
    )
    try:
        return await _mark_cleaned(db, own, clock, reserved_zones, clock() - stale_after)
    finally:
        if own is not storage:
            await own.release()


async def _mark_cleaned(
    db: Database, own: EdgeStorage, clock: Clock, reserved_zones: tuple[str, ...], since: float
) -> CleanupResult:
    mine = await clean_own_storage(db, own, clock, reserved_zones=reserved_zones)
    result = CleanupResult(deleted_dirs=mine.deleted_dirs, errors=mine.errors)
    for domain in await store.uncleaned_removals(db):
        async with db.write(Scope.hostname(domain.hostname)) as conn:
            if domain.verified_at is None or hostnames.is_reserved(domain.hostname, reserved_zones):
                result.kept_unproven += 1
            elif await store.hostname_is_held(conn, domain.hostname):
                # Marked cleaned all the same, not left to retry: the holder is proven, so its
                # own removal cleans the name, and a row left here would be read again at every
                # run, fill the batch ahead of newer removals and never be purged.
                result.kept_live += 1
            elif not await _cleaned(conn, own, domain.id, domain.hostname, since):
                result.waiting += 1  # an edge has not deleted it yet
                continue
            await store.mark_certs_cleaned(conn, domain.id, clock())
            await edges.forget_cleanups(conn, domain.id)
        result.cleaned += 1
    return result


async def _cleaned(
    conn: Connection, own: EdgeStorage, domain_id: int, hostname: str, since: float
) -> bool:
    """Whether the removed domain's certificate is gone from every storage still reporting, and
    from this edge's own (reporting or not yet): its deletion may just have failed here."""
    if own.identity is None:
        return False  # this edge's storage cannot even be named: nothing can be said of it
    if own.held() and not await edges.said_cleaned(conn, own.identity, domain_id, hostname):
        return False
    return await edges.cleaned_everywhere(conn, domain_id, hostname, since=since)
