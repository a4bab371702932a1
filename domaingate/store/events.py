"""The domain event log and the webhook outbox it feeds.

Events are written only inside the transaction that moves a domain, so the log and the domain rows
can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from domaingate.models import DomainEvent
from domaingate.states import WEBHOOK_STATUSES, Status, event_type
from domaingate.store import rows
from domaingate.store.abc import Connection, Database


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event to append: a move of a domain from `source` to `target` (or its creation)."""

    domain_id: int
    source: Status | None
    target: Status
    reason: str | None
    message: str | None
    now: float
    # Set for events that are not state moves of the webhook kind (the creation of a domain).
    kind: str | None = None


async def record_many(conn: Connection, new: Sequence[NewEvent]) -> list[str]:
    """Append events (and their outbox rows, for webhook types); returns their event ids."""
    ids = [str(uuid.uuid4()) for _ in new]
    await conn.executemany(
        "INSERT INTO domain_events"
        " (event_id, domain_id, type, from_status, to_status, reason, message, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                event_id,
                event.domain_id,
                event.kind or event_type(event.target),
                event.source.value if event.source else None,
                event.target.value,
                event.reason,
                event.message,
                event.now,
            )
            for event_id, event in zip(ids, new, strict=True)
        ],
    )
    await conn.executemany(
        "INSERT INTO webhook_outbox (event_id, next_attempt_at) VALUES (?, ?)",
        [
            (event_id, event.now)
            for event_id, event in zip(ids, new, strict=True)
            if event.kind is None and event.target in WEBHOOK_STATUSES
        ],
    )
    return ids


async def for_domain(db: Database, domain_id: int) -> list[DomainEvent]:
    async with db.reader.execute(
        "SELECT * FROM domain_events WHERE domain_id = ? ORDER BY id", (domain_id,)
    ) as cursor:
        return [rows.event(row) async for row in cursor]
