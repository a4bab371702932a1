"""Writing DNS check outcomes: many in one transaction (the reconciler), or one (verify now).

The reconciler finishes hundreds of checks a second. One transaction per check spent its time in
COMMIT's fsync and in hops to SQLite's thread, one per statement; here a batch costs a fixed
handful of statements whatever its size: the statuses are read once, and each kind of write is one
`executemany`. Every write is still a compare-and-set on the status the domain was read with: the
statuses are read inside the write transaction, which holds SQLite's write lock, so no other
writer can move a domain between that read and these writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domaingate.lifecycle import CheckPlan
from domaingate.states import check_move
from domaingate.store.connection import Connection
from domaingate.store.database import Database
from domaingate.store.domains import Move, get_by_id_in, move_many, unchanged
from domaingate.store.models import Domain

_WRITE_CHECK = (
    "UPDATE domains SET last_checked_at = ?, next_check_at = ?, last_check_code = ?,"
    " last_check_message = ?, failure_count = ?, failing_since = ?, dns_provider = ?,"
    " updated_at = ? WHERE id = ? AND status = ?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """A check of `domain` (as it was read before the check) and the plan made of it at `now`."""

    domain: Domain
    plan: CheckPlan
    now: float

    def __post_init__(self) -> None:
        if self.plan.target is not None:
            check_move(self.domain.status, self.plan.target)


async def apply_checks(db: Database, outcomes: Sequence[CheckOutcome]) -> list[bool]:
    """Write `outcomes` in one transaction; for each, whether it was written.

    False: the domain changed status since it was read (or appears earlier in the same batch),
    and nothing was written for it.
    """
    if not outcomes:
        return []
    async with db.write() as conn:
        return await _write(conn, outcomes)


async def apply_check(db: Database, outcome: CheckOutcome) -> Domain | None:
    """Write one outcome; the domain as written, or None if it changed status meanwhile."""
    async with db.write() as conn:
        [written] = await _write(conn, [outcome])
        return await get_by_id_in(conn, outcome.domain.id) if written else None


async def _write(conn: Connection, outcomes: Sequence[CheckOutcome]) -> list[bool]:
    written = await unchanged(conn, [o.domain for o in outcomes])
    chosen = [o for o, ok in zip(outcomes, written, strict=True) if ok]
    await conn.executemany(
        _WRITE_CHECK,
        [
            (
                o.now,
                o.plan.next_check_at,
                o.plan.last_check_code,
                o.plan.last_check_message,
                o.plan.failure_count,
                o.plan.failing_since,
                o.plan.dns_provider,
                o.now,
                o.domain.id,
                o.domain.status.value,
            )
            for o in chosen
        ],
    )
    await move_many(
        conn,
        [
            Move(
                domain=o.domain,
                target=o.plan.target,
                reason=o.plan.reason,
                message=o.plan.message,
                now=o.now,
            )
            for o in chosen
            if o.plan.target is not None
        ],
    )
    return written
