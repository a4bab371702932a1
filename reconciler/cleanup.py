"""Removal clean-up: delete a removed domain's certificates from Caddy's storage, in every issuer.

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
import stat as stat_mode
from dataclasses import dataclass
from pathlib import Path

from domaingate import hostnames
from domaingate.store import certificates as store
from domaingate.store.abc import Database
from domaingate.store.scopes import Scope
from domaingate.times import Clock
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


async def clean_removed(
    db: Database, storage: Path, clock: Clock, *, reserved_zones: tuple[str, ...] = ()
) -> CleanupResult:
    """Delete the certificates of removed domains that had been verified. A claim nobody proved
    got no certificate through domaingate, so whatever is stored under its name belongs to
    someone else (the operator's own site in the same storage, say) and stays."""
    result = CleanupResult()
    for domain in await store.uncleaned_removals(db):
        try:
            # The name's lock: no rival claim on it can be verified while its certificates go.
            async with db.write(Scope.hostname(domain.hostname)) as conn:
                if domain.verified_at is None or hostnames.is_reserved(
                    domain.hostname, reserved_zones
                ):
                    result.kept_unproven += 1
                elif await store.hostname_is_held(conn, domain.hostname):
                    # Marked cleaned all the same, not left to retry: the holder is proven, so its
                    # own removal cleans the name, and a row left here would be read again at every
                    # run, fill the batch ahead of newer removals and never be purged.
                    result.kept_live += 1
                else:
                    result.deleted_dirs += await asyncio.to_thread(
                        delete_cert_dirs, storage, domain.hostname
                    )
                await store.mark_certs_cleaned(conn, domain.id, clock())
            result.cleaned += 1
        except (OSError, ValueError) as exc:
            # Left unmarked, so the next run tries again (after the operator fixes permissions).
            result.errors += 1
            log.warning("cannot delete the certificates of %s: %s", domain.hostname, exc)
    return result
