"""Read-only figures for people: the operator's health view and a tenant's quota usage.

Each is a handful of aggregate reads on the reader connection; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from domaingate.states import Status
from domaingate.store.abc import Database
from domaingate.store.leases import RECONCILER_LEASE


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRow:
    holder: str
    expires_at: float
    token: int  # the fencing token: one more at every takeover (domaingate.store.leases)


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """What the store says about the reconciler's work."""

    lease: LeaseRow | None  # the row as stored; it may have lapsed
    outbox_backlog: int
    oldest_undelivered_at: float | None
    last_check_at: float | None  # the latest DNS check result written, by anyone
    checks_overdue: int  # live domains whose next check is more than `overdue_after` late
    counts: dict[str, int]  # live domains by status, every live status present


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """A tenant's live domains, in all and per app (apps without live domains are absent)."""

    domains: int
    per_app: dict[str, int]


async def health(db: Database, now: float, overdue_after: float) -> Health:
    reader = db.reader
    async with reader.execute(
        "SELECT holder, expires_at, token FROM leases WHERE name = ?", (RECONCILER_LEASE,)
    ) as cursor:
        row = await cursor.fetchone()
    lease = (
        None
        if row is None
        else LeaseRow(holder=row[0], expires_at=float(row[1]), token=int(row[2]))
    )
    async with reader.execute(
        "SELECT count(*), min(e.created_at) FROM webhook_outbox o"
        " JOIN domain_events e ON e.event_id = o.event_id WHERE o.delivered_at IS NULL"
    ) as cursor:
        backlog = await cursor.fetchone()
    async with reader.execute(
        "SELECT max(last_checked_at),"
        " sum(CASE WHEN next_check_at < ? THEN 1 ELSE 0 END)"
        " FROM domains WHERE status != 'removed'",
        (now - overdue_after,),
    ) as cursor:
        checks = await cursor.fetchone()
    counts = {status.value: 0 for status in Status if status is not Status.REMOVED}
    async with reader.execute(
        "SELECT status, count(*) FROM domains WHERE status != 'removed' GROUP BY status"
    ) as cursor:
        counts.update({str(status): int(n) async for status, n in cursor})
    return Health(
        lease=lease,
        outbox_backlog=int(backlog[0]) if backlog else 0,
        oldest_undelivered_at=backlog[1] if backlog else None,
        last_check_at=checks[0] if checks else None,
        checks_overdue=int(checks[1] or 0) if checks else 0,
        counts=counts,
    )


async def usage(db: Database, tenant_id: int) -> Usage:
    async with db.reader.execute(
        "SELECT app, count(*) FROM domains WHERE tenant_id = ? AND status != 'removed'"
        " GROUP BY app ORDER BY app",
        (tenant_id,),
    ) as cursor:
        per_app = {str(app): int(n) async for app, n in cursor}
    return Usage(domains=sum(per_app.values()), per_app=per_app)
