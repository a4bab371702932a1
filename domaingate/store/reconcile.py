"""Queries the reconciler needs: due checks, certificate fields, removal clean-up, outbox, leases.

They live beside the other repository modules so that every SQL statement stays in `gateway/store`,
but only the reconciler calls them; the gateway never imports the reconciler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from domaingate.states import Status
from domaingate.store.connection import Connection
from domaingate.store.database import Database
from domaingate.store.models import DOMAIN_SELECT, Domain

# Well below SQLite's limit on bound parameters in one statement.
_NAMES_PER_SELECT = 500


async def due_domains(
    db: Database, now: float, limit: int, exclude: frozenset[int] = frozenset()
) -> list[Domain]:
    """Live domains whose next check is due, most overdue first (`exclude`: already in flight)."""
    marks = ", ".join("?" for _ in exclude)
    not_in = f" AND d.id NOT IN ({marks})" if exclude else ""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status != 'removed' AND d.next_check_at IS NOT NULL"
        f" AND d.next_check_at <= ?{not_in} ORDER BY d.next_check_at, d.id LIMIT ?",
        (now, *sorted(exclude), limit),
    ) as cursor:
        return [Domain.from_row(row) async for row in cursor]


async def postpone_check(db: Database, domain: Domain, next_check_at: float) -> None:
    """Move a due check later without recording a result (the check itself could not run)."""
    async with db.write() as conn:
        await conn.execute(
            "UPDATE domains SET next_check_at = ? WHERE id = ? AND status = ?",
            (next_check_at, domain.id, domain.status.value),
        )


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
            page = [Domain.from_row(row) async for row in cursor]
        if not page:
            return
        yield page
        after = page[-1].id


async def _number(db: Database, sql: str) -> int:
    """The one number a query answers."""
    async with db.reader.execute(sql) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def max_seq(db: Database) -> int:
    """The highest change sequence in the domains table."""
    return await _number(db, "SELECT coalesce(max(seq), 0) FROM domains")


async def live_changed_since(db: Database, seq: int) -> list[Domain]:
    """Live domains attached, moved or renamed since the change sequence `seq`."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.seq > ? AND d.status != 'removed' ORDER BY d.id", (seq,)
    ) as cursor:
        return [Domain.from_row(row) async for row in cursor]


async def live_named(db: Database, hostnames: Iterable[str]) -> list[Domain]:
    """The live domains among `hostnames`."""
    names = sorted(set(hostnames))
    found: list[Domain] = []
    for start in range(0, len(names), _NAMES_PER_SELECT):
        chunk = names[start : start + _NAMES_PER_SELECT]
        marks = ", ".join("?" for _ in chunk)
        async with db.reader.execute(
            f"{DOMAIN_SELECT} WHERE d.hostname IN ({marks}) AND d.status != 'removed'", chunk
        ) as cursor:
            found += [Domain.from_row(row) async for row in cursor]
    return found


async def active_ending_by(db: Database, until: float) -> list[Domain]:
    """Active domains whose stored certificate ends by `until` (the renewal window's edge)."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status = 'active' AND d.cert_expires_at <= ? ORDER BY d.id",
        (until,),
    ) as cursor:
        return [Domain.from_row(row) async for row in cursor]


async def count_certified(db: Database) -> int:
    """Active and expiring domains: what the certificate scan's mass-loss guard compares with."""
    return await _number(db, "SELECT count(*) FROM domains WHERE status IN ('active', 'expiring')")


async def set_certs(
    conn: Connection,
    certs: Sequence[tuple[Domain, float | None, str | None]],
    *,
    now: float,
) -> None:
    """Write the certificate fields (domain, expires_at, issuer) of domains whose status the
    caller has read in this transaction; each row still only if the status is unchanged."""
    await conn.executemany(
        "UPDATE domains SET cert_expires_at = ?, cert_issuer = ?, updated_at = ?"
        " WHERE id = ? AND status = ?",
        [
            (expires_at, issuer, now, domain.id, domain.status.value)
            for domain, expires_at, issuer in certs
        ],
    )


async def uncleaned_removals(db: Database, limit: int = 500) -> list[Domain]:
    """Removed domains whose certificates have not been deleted from Caddy's storage yet."""
    async with db.reader.execute(
        f"{DOMAIN_SELECT} WHERE d.status = 'removed' AND d.certs_cleaned_at IS NULL"
        " ORDER BY d.removed_at, d.id LIMIT ?",
        (limit,),
    ) as cursor:
        return [Domain.from_row(row) async for row in cursor]


async def hostname_is_live(conn: Connection, hostname: str) -> bool:
    async with conn.execute(
        "SELECT 1 FROM domains WHERE hostname = ? AND status != 'removed'", (hostname,)
    ) as cursor:
        return await cursor.fetchone() is not None


async def mark_certs_cleaned(conn: Connection, domain_id: int, now: float) -> None:
    await conn.execute(
        "UPDATE domains SET certs_cleaned_at = ? WHERE id = ? AND status = 'removed'",
        (now, domain_id),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """An undelivered webhook: the event and the domain it is about."""

    event_id: str
    attempts: int
    type: str
    created_at: float
    hostname: str
    tenant: str
    app: str
    status: Status
    from_status: Status | None
    reason: str | None
    message: str | None


async def due_webhooks(db: Database, now: float, limit: int) -> list[OutboxItem]:
    """Undelivered outbox rows whose next attempt is due, in the order their events happened."""
    async with db.reader.execute(
        "SELECT o.event_id, o.attempts, e.type, e.created_at, e.to_status, e.from_status,"
        " e.reason, e.message, d.hostname, d.app, t.name AS tenant"
        " FROM webhook_outbox o JOIN domain_events e ON e.event_id = o.event_id"
        " JOIN domains d ON d.id = e.domain_id JOIN tenants t ON t.id = d.tenant_id"
        " WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?"
        " ORDER BY e.id LIMIT ?",
        (now, limit),
    ) as cursor:
        return [
            OutboxItem(
                event_id=row["event_id"],
                attempts=row["attempts"],
                type=row["type"],
                created_at=row["created_at"],
                hostname=row["hostname"],
                tenant=row["tenant"],
                app=row["app"],
                status=Status(row["to_status"]),
                from_status=Status(row["from_status"]) if row["from_status"] else None,
                reason=row["reason"],
                message=row["message"],
            )
            async for row in cursor
        ]


async def outbox_backlog(db: Database) -> int:
    """Webhook events not delivered yet (due now or waiting for their next attempt)."""
    return await _number(db, "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL")


async def mark_delivered(db: Database, event_id: str, now: float) -> None:
    async with db.write() as conn:
        await conn.execute(
            "UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE event_id = ? AND delivered_at IS NULL",
            (now, event_id),
        )


async def mark_attempt_failed(
    db: Database, event_id: str, *, next_attempt_at: float, error: str
) -> None:
    async with db.write() as conn:
        await conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE event_id = ? AND delivered_at IS NULL",
            (next_attempt_at, error[:500], event_id),
        )


async def take_lease(db: Database, name: str, holder: str, now: float, ttl: float) -> float | None:
    """Take or renew lease `name` for `holder`; its expiry if held now, None if someone else has it.

    The read and the write share one `BEGIN IMMEDIATE` transaction, so two processes cannot both
    see the lease free.
    """
    async with db.write() as conn:
        await conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at"
            " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
            (name, holder, now + ttl, now),
        )
        async with conn.execute(
            "SELECT holder, expires_at FROM leases WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
    if row is None or row["holder"] != holder:
        return None
    return float(row["expires_at"])


async def release_lease(db: Database, name: str, holder: str) -> None:
    async with db.write() as conn:
        await conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


async def lease_holder(db: Database, name: str, now: float) -> str | None:
    async with db.reader.execute(
        "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, now)
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row["holder"])
