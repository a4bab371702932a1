"""Forgetting removed domains: their rows, events and webhook outbox rows, after REMOVED_RETENTION.

A removed row is kept for audit and for the cool-down (which reads it), and until the reconciler
has cleaned its certificates out of Caddy's storage; after that it goes, with everything that
refers to it, in one transaction per batch.
"""

from __future__ import annotations

from domaingate.store.abc import Database

# Rows per transaction: each batch holds every writer back only briefly.
PURGE_BATCH = 500


async def purge_removed(db: Database, *, before: float, batch: int = PURGE_BATCH) -> int:
    """Delete removed domains removed before `before` (and cleaned up); returns how many."""
    purged = 0
    while True:
        # No scope: every writer waits. The rows are found inside the transaction, so their
        # names are not known before it; a purge is rare and each batch short.
        async with db.write() as conn:
            async with conn.execute(
                "SELECT id FROM domains WHERE status = 'removed' AND removed_at < ?"
                " AND certs_cleaned_at IS NOT NULL ORDER BY removed_at LIMIT ?",
                (before, batch),
            ) as cursor:
                ids = [int(row[0]) async for row in cursor]
            if not ids:
                return purged
            marks = ", ".join("?" for _ in ids)
            await conn.execute(
                "DELETE FROM webhook_outbox WHERE event_id IN (SELECT event_id FROM domain_events"
                f" WHERE domain_id IN ({marks}))",
                ids,
            )
            await conn.execute(f"DELETE FROM domain_events WHERE domain_id IN ({marks})", ids)
            # A storage's word about a purged domain (one written late, by an edge whose clean-up
            # ran as the domain was marked cleaned): SQLite may give its id to the next domain.
            await conn.execute(f"DELETE FROM edge_cleanups WHERE domain_id IN ({marks})", ids)
            await conn.execute(f"DELETE FROM domains WHERE id IN ({marks})", ids)
        purged += len(ids)
        if len(ids) < batch:
            return purged
