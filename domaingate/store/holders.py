"""Who holds a hostname, in the store: the facts the claim rules (`domaingate.lifecycle.claims`)
decide from, read inside the caller's write transaction, and the rivals' losses they write.

Every rule reads inside the caller's write transaction, which holds the name's lock
(`Scope.hostname`): two verifications of one name, or a verification and an attach, in any
processes, are decided one after the other, and the partial unique index on proven claims stands
behind that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from domaingate.lifecycle import claims
from domaingate.lifecycle.claims import HOSTNAME_TAKEN, Holders
from domaingate.lifecycle.dns import CheckOutcome
from domaingate.models import Domain, Tenant
from domaingate.store import in_lists, moves, rows
from domaingate.store.abc import Connection
from domaingate.store.rows import DOMAIN_SELECT
from domaingate.store.statuses import HELD, UNPROVEN


async def check_claimable(conn: Connection, tenant: Tenant, hostname: str, now: float) -> None:
    """Raise unless `tenant` may attach `hostname` now."""
    async with conn.execute(
        "SELECT 1 FROM domains WHERE hostname = ? AND status != 'removed' AND tenant_id = ?"
        " LIMIT 1",
        (hostname, tenant.id),
    ) as cursor:
        own_claim = await cursor.fetchone() is not None
    found = (await holders(conn, [hostname])).get(hostname, Holders())
    refusal = claims.attach_refusal(
        hostname, found, own_claim=own_claim, tenant_id=tenant.id, now=now
    )
    if refusal is not None:
        raise refusal


async def holders(conn: Connection, hostnames: Iterable[str]) -> dict[str, Holders]:
    """The proven claims on `hostnames`, read in a statement per few hundred names: a batch of
    checks that verify costs a round trip, not one per name."""
    found: dict[str, Holders] = {}
    for chunk in in_lists.chunks(hostnames):
        async with conn.execute(
            "SELECT hostname, id, tenant_id, status, removed_at FROM domains"
            f" WHERE hostname IN ({in_lists.marks(chunk)}) AND (status IN {HELD}"
            " OR (status = 'removed' AND verified_at IS NOT NULL))",
            chunk,
        ) as cursor:
            async for row in cursor:
                holder = found.setdefault(str(row[0]), Holders())
                if row[3] != "removed":
                    holder.held.append(int(row[1]))
                elif row[4] is not None:
                    holder.removed.append((int(row[2]), float(row[4])))
    return found


async def settle(
    conn: Connection, outcomes: Sequence[CheckOutcome], written: Sequence[bool]
) -> list[CheckOutcome]:
    """`outcomes` as the claim rules settle them against the names' holders."""
    claiming = [
        o for o, ok in zip(outcomes, written, strict=True) if ok and claims.verifies(o.plan)
    ]
    found = await holders(conn, {o.domain.hostname for o in claiming})
    return claims.settle(outcomes, written, found)


async def fail_rivals(conn: Connection, winners: Sequence[CheckOutcome]) -> None:
    """Other tenants' pending and failed claims on the names `winners` have just verified: a
    pending one moves to failed with `hostname_taken` (its event and webhook in this same
    transaction), a failed one says why it stays failed."""
    rivals: dict[str, list[Domain]] = {}
    for chunk in in_lists.chunks(winner.domain.hostname for winner in winners):
        async with conn.execute(
            f"{DOMAIN_SELECT} WHERE d.hostname IN ({in_lists.marks(chunk)})"
            f" AND d.status IN {UNPROVEN} ORDER BY d.id",
            chunk,
        ) as cursor:
            async for row in cursor:
                domain = rows.domain(row)
                rivals.setdefault(domain.hostname, []).append(domain)
    losses = [
        loss
        for winner in winners
        for loss in claims.rival_losses(winner, rivals.get(winner.domain.hostname, ()))
    ]
    if not losses:
        return
    updates: list[tuple[Any, ...]] = [
        (
            HOSTNAME_TAKEN,
            loss.message,
            loss.now,
            loss.next_check_at,
            loss.rival.id,
            loss.rival.status.value,
        )
        for loss in losses
    ]
    await conn.executemany(
        "UPDATE domains SET last_check_code = ?, last_check_message = ?, updated_at = ?,"
        " next_check_at = ? WHERE id = ? AND status = ?",
        updates,
    )
    await moves.move_many(
        conn, [(loss.rival.id, loss.move, loss.now) for loss in losses if loss.move is not None]
    )
