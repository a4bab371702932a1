"""The certificate scan's reads and writes: live domains to plan, their certificate fields, and
the clean-up of removed domains' certificates from Caddy's storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from domaingate.models import Domain
from domaingate.store import in_lists, rows
from domaingate.store.abc import Connection, Database
from domaingate.store.rows import DOMAIN_SELECT
from domaingate.store.statuses import CERTIFIED, HELD

# Literals from the one set of statuses the gate allows, never from input.


async def live_domains(db: Database) -> list[Domain]:
    return [domain async for page in live_domain_pages(db) for domain in page]


async def live_domain_pages(db: Database, size: int = 2000) -> AsyncIterator[list[Domain]]:
    """Every live domain, oldest first, `size` at a time.

    Each page is its own short read: one statement over a million rows would hold the reader
    connection (which serves one statement at a time) for seconds, and every other read of the
    process (the DNS schedule's poll among them) would wait behind it.
    """
    after = 0
    while True:
        async with db.reader.execute(
            f"{DOMAIN_SELECT} WHERE d.status != 'removed' AND d.id > ? ORDER BY d.id LIMIT ?",
            (after, size),
        ) as cursor:
            page = [rows.domain(row) async for row in cursor]
        if not page:
            return
        yield page
        after = page[-1].id


async def max_seq(db: Database) -> int:
    """The highest change sequence in the domains table."""
    return await db.read_number("SELECT coalesce(max(seq), 0) FROM domains")


async def live_changed_since(db: Database, seq: int) -> list[Domain]:
    """Live domains attached, moved or renamed since the change sequence `seq`."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.seq > ? AND d.status != 'removed' ORDER BY d.id", (seq,)
    ) as cursor:
        return [rows.domain(row) async for row in cursor]


async def live_named(db: Database, hostnames: Iterable[str]) -> list[Domain]:
    """The live domains among `hostnames`."""
    found: list[Domain] = []
    for chunk in in_lists.chunks(hostnames):
        async with db.reader.execute(
            f"{DOMAIN_SELECT} WHERE d.hostname IN ({in_lists.marks(chunk)})"
            " AND d.status != 'removed'",
            chunk,
        ) as cursor:
            found += [rows.domain(row) async for row in cursor]
    return found


async def active_due_by(db: Database, until: float) -> list[Domain]:
    """Active domains whose certificate's renewal is due by `until` (cert_renewal_due_at)."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status = 'active' AND d.cert_renewal_due_at <= ? ORDER BY d.id",
        (until,),
    ) as cursor:
        return [rows.domain(row) async for row in cursor]


async def count_certified(db: Database) -> int:
    """Active and expiring domains: what the certificate scan's mass-loss guard compares with."""
    return await db.read_number(f"SELECT count(*) FROM domains WHERE status IN {CERTIFIED}")


async def set_certs(
    conn: Connection,
    certs: Sequence[tuple[Domain, float | None, str | None, float | None]],
    *,
    now: float,
) -> None:
    """Write the certificate fields (domain, expires_at, issuer, renewal_due_at) of domains whose
    status the caller has read in this transaction; each row still only if the status is
    unchanged."""
    await conn.executemany(
        "UPDATE domains SET cert_expires_at = ?, cert_issuer = ?, cert_renewal_due_at = ?,"
        " updated_at = ? WHERE id = ? AND status = ?",
        [
            (expires_at, issuer, due_at, now, domain.id, domain.status.value)
            for domain, expires_at, issuer, due_at in certs
        ],
    )


async def uncleaned_removals(db: Database, limit: int = 500) -> list[Domain]:
    """Removed domains whose certificates have not been deleted from Caddy's storage yet."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status = 'removed' AND d.certs_cleaned_at IS NULL"
        " ORDER BY d.removed_at, d.id LIMIT ?",
        (limit,),
    ) as cursor:
        return [rows.domain(row) async for row in cursor]


async def removals_still_stored(db: Database, storage: str, limit: int = 500) -> list[Domain]:
    """Removed domains marked cleaned whose certificate `storage` still reports, under a name no
    claim the gate allows holds: the storage was not counted when they were marked (its edge
    silent past EDGE_STALE_AFTER) and is reporting again, copies and all."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status = 'removed' AND d.certs_cleaned_at IS NOT NULL"
        " AND d.verified_at IS NOT NULL AND EXISTS (SELECT 1 FROM edge_certificates c"
        " WHERE c.storage = ? AND c.hostname = d.hostname) AND NOT EXISTS (SELECT 1 FROM"
        f" domains h WHERE h.hostname = d.hostname AND h.status IN {HELD})"
        " ORDER BY d.removed_at, d.id LIMIT ?",
        (storage, limit),
    ) as cursor:
        return [rows.domain(row) async for row in cursor]


async def hostname_is_held(conn: Connection, hostname: str) -> bool:
    """Whether a claim the gate allows (verified, active, expiring) holds `hostname`: the one
    claim whose certificate the one directory per name in Caddy's storage may be. A pending or
    failed claim, of any tenant, needs none."""
    async with conn.execute(
        f"SELECT 1 FROM domains WHERE hostname = ? AND status IN {HELD} LIMIT 1",
        (hostname,),
    ) as cursor:
        return await cursor.fetchone() is not None


async def mark_certs_cleaned(conn: Connection, domain_id: int, now: float) -> None:
    await conn.execute(
        "UPDATE domains SET certs_cleaned_at = ? WHERE id = ? AND status = 'removed'",
        (now, domain_id),
    )
