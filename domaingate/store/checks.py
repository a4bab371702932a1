"""DNS checks in the store: which are due, and writing their outcomes, many in one transaction
(the reconciler) or one (verify now).

The reconciler finishes hundreds of checks a second. One transaction per check spent its time in
COMMIT's fsync and in hops to SQLite's thread, one per statement; here a batch costs a fixed
handful of statements whatever its size: the statuses are read once, and each kind of write is one
`executemany`. Every write is still a compare-and-set on the status the domain was read with: the
statuses are read inside the write transaction, which holds the lock of every name in the batch
(SQLite's write lock, PostgreSQL's scopes), so no other writer can move a domain, or verify a
rival claim on its name, between that read and these writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from domaingate.lifecycle import claims
from domaingate.lifecycle.dns import CheckOutcome
from domaingate.models import Domain
from domaingate.store import holders, moves, rows, scopes
from domaingate.store.abc import Connection, Database
from domaingate.store.domains import get_by_id_in
from domaingate.store.rows import DOMAIN_SELECT
from domaingate.store.scopes import Scope

_WRITE_CHECK = (
    "UPDATE domains SET last_checked_at = ?, next_check_at = ?, last_check_code = ?,"
    " last_check_message = ?, failure_count = ?, failing_since = ?, dns_provider = ?,"
    " updated_at = ? WHERE id = ? AND status = ?"
)


async def apply_checks(db: Database, outcomes: Sequence[CheckOutcome]) -> list[bool]:
    """Write `outcomes` in one transaction; for each, whether it was written.

    False: the domain changed status since it was read (or appears earlier in the same batch),
    and nothing was written for it.
    """
    if not outcomes:
        return []
    async with db.write(*scopes.hostnames(o.domain.hostname for o in outcomes)) as conn:
        return await _write(conn, outcomes)


async def apply_check(db: Database, outcome: CheckOutcome) -> Domain | None:
    """Write one outcome; the domain as written, or None if it changed status meanwhile."""
    async with db.write(Scope.hostname(outcome.domain.hostname)) as conn:
        [written] = await _write(conn, [outcome])
        return await get_by_id_in(conn, outcome.domain.id) if written else None


async def _write(conn: Connection, outcomes: Sequence[CheckOutcome]) -> list[bool]:
    written, chosen = await moves.write_batch(
        conn,
        outcomes,
        now=lambda outcome: outcome.now,
        write=_write_fields,
        # A verification another claim has beaten (or a cool-down holds back) is written as such.
        settle=holders.settle,
    )
    await holders.fail_rivals(conn, [o for o in chosen if claims.verifies(o.plan)])
    return written


async def _write_fields(conn: Connection, chosen: list[CheckOutcome]) -> None:
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
        return [rows.domain(row) async for row in cursor]


async def postpone_check(db: Database, domain: Domain, next_check_at: float) -> None:
    """Move a due check later without recording a result (the check itself could not run)."""
    async with db.write(Scope.hostname(domain.hostname)) as conn:
        await conn.execute(
            "UPDATE domains SET next_check_at = ? WHERE id = ? AND status = ?",
            (next_check_at, domain.id, domain.status.value),
        )
