"""The domain event log and the webhook outbox it feeds.

Events are written only inside the transaction that moves a domain, so the log and the domain rows
can never disagree.
"""

from __future__ import annotations

import uuid

import aiosqlite

from gateway.states import WEBHOOK_STATUSES, Status, event_type
from gateway.store.database import Database
from gateway.store.models import DomainEvent


async def record(
    conn: aiosqlite.Connection,
    *,
    domain_id: int,
    source: Status | None,
    target: Status,
    reason: str | None,
    message: str | None,
    now: float,
    kind: str | None = None,
) -> str:
    """Append an event (and its outbox row, for webhook types); returns the event id."""
    event_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO domain_events"
        " (event_id, domain_id, type, from_status, to_status, reason, message, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event_id,
            domain_id,
            kind or event_type(target),
            source.value if source else None,
            target.value,
            reason,
            message,
            now,
        ),
    )
    if kind is None and target in WEBHOOK_STATUSES:
        await conn.execute(
            "INSERT INTO webhook_outbox (event_id, next_attempt_at) VALUES (?, ?)",
            (event_id, now),
        )
    return event_id


async def for_domain(db: Database, domain_id: int) -> list[DomainEvent]:
    async with db.reader.execute(
        "SELECT * FROM domain_events WHERE domain_id = ? ORDER BY id", (domain_id,)
    ) as cursor:
        return [DomainEvent.from_row(row) async for row in cursor]
