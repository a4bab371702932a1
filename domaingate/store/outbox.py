"""The webhook outbox: events waiting for delivery, and what each delivery attempt did.

Rows are added with their events (`store.events.record_many`), in the transaction that moves a
domain; the reconciler's webhook job reads and marks them here.
"""

from __future__ import annotations

from dataclasses import dataclass

from domaingate.states import Status
from domaingate.store.abc import Database
from domaingate.store.scopes import Scope


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


async def backlog(db: Database) -> int:
    """Webhook events not delivered yet (due now or waiting for their next attempt)."""
    return await db.read_number("SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL")


async def mark_delivered(db: Database, event_id: str, now: float) -> None:
    async with db.write(Scope.row("webhook_outbox", event_id)) as conn:
        await conn.execute(
            "UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE event_id = ? AND delivered_at IS NULL",
            (now, event_id),
        )


async def mark_attempt_failed(
    db: Database, event_id: str, *, next_attempt_at: float, error: str
) -> None:
    async with db.write(Scope.row("webhook_outbox", event_id)) as conn:
        await conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE event_id = ? AND delivered_at IS NULL",
            (next_attempt_at, error[:500], event_id),
        )
