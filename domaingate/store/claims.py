"""Who holds a hostname: the attach rules, the attach rate limit, and the race to verify.

A pending or failed claim holds nobody back, so several tenants may claim one name; the first
claim to verify takes it, and in the same transaction the other tenants' claims turn failed with
`hostname_taken`. A verified claim's removal keeps the name from other tenants for the cool-down;
an unproven claim leaves none. Every rule reads inside the caller's write transaction, which holds
SQLite's write lock: two verifications of one name, in any processes, are decided one after the
other, and the partial unique index on proven claims stands behind that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from domaingate.claims import (
    ATTACH_LIMIT_PER_TENANT,
    ATTACH_WINDOW_SECONDS,
    COOLDOWN_SECONDS,
    HOSTNAME_COOLDOWN,
    HOSTNAME_TAKEN,
)
from domaingate.errors import AttachRateLimited, HostnameAlreadyRegistered, HostnameCooldownActive
from domaingate.lifecycle import CheckPlan, Move
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import in_lists
from domaingate.store.abc import Connection
from domaingate.store.models import DOMAIN_SELECT, Domain, Tenant

if TYPE_CHECKING:
    from domaingate.store.checks import CheckOutcome

_HELD = "('verified', 'active', 'expiring')"


async def check_claimable(conn: Connection, tenant: Tenant, hostname: str, now: float) -> None:
    """Raise unless `tenant` may attach `hostname` now."""
    async with conn.execute(
        f"SELECT 1 FROM domains WHERE hostname = ? AND (status IN {_HELD}"
        " OR (status != 'removed' AND tenant_id = ?)) LIMIT 1",
        (hostname, tenant.id),
    ) as cursor:
        if await cursor.fetchone() is not None:
            raise HostnameAlreadyRegistered(hostname)
    free_at = await _cooldown_ends(conn, tenant.id, hostname)
    if free_at is not None and now < free_at:
        raise HostnameCooldownActive(hostname, retry_after=max(1, math.ceil(free_at - now)))


async def _cooldown_ends(conn: Connection, tenant_id: int, hostname: str) -> float | None:
    """When the cool-down of another tenant's latest removed proven claim on `hostname` ends."""
    async with conn.execute(
        "SELECT max(removed_at) FROM domains WHERE hostname = ? AND status = 'removed'"
        " AND verified_at IS NOT NULL AND tenant_id != ?",
        (hostname, tenant_id),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[0] is None:
        return None
    return float(row[0]) + COOLDOWN_SECONDS


async def check_attach_rate(
    conn: Connection, tenant: Tenant, now: float, limit: int = ATTACH_LIMIT_PER_TENANT
) -> None:
    """Raise AttachRateLimited when `tenant` attached `limit` domains within the last hour.

    Counted from the domains' own rows (removed rows are kept far longer than the hour), so an
    attach-and-detach loop is counted as surely as attaches that stay.
    """
    async with conn.execute(
        "SELECT count(*), min(created_at) FROM (SELECT created_at FROM domains"
        " WHERE tenant_id = ? AND created_at > ? ORDER BY created_at DESC LIMIT ?) AS recent",
        (tenant.id, now - ATTACH_WINDOW_SECONDS, limit),
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None and row[0] >= limit:
        retry_after = max(1, math.ceil(row[1] + ATTACH_WINDOW_SECONDS - now))
        raise AttachRateLimited(limit, retry_after)


def verifies(plan: CheckPlan) -> bool:
    """Whether `plan` moves its domain to verified."""
    return plan.move is not None and plan.move.target is Status.VERIFIED


async def settle(
    conn: Connection, outcomes: Sequence[CheckOutcome], written: Sequence[bool]
) -> list[CheckOutcome]:
    """`outcomes` with every verification that may not happen replaced: a name already held by
    another claim (in the database, or by an earlier outcome of this batch) fails the claim
    with `hostname_taken`; a name in another tenant's cool-down leaves it as it is, saying so."""
    claiming = [o for o, ok in zip(outcomes, written, strict=True) if ok and verifies(o.plan)]
    holders = await _holders(conn, {o.domain.hostname for o in claiming})
    taken: set[str] = set()
    settled: list[CheckOutcome] = []
    for outcome, ok in zip(outcomes, written, strict=True):
        plan, domain = outcome.plan, outcome.domain
        if not ok or not verifies(plan):
            settled.append(outcome)
            continue
        holder = holders.get(domain.hostname, _Holders())
        if domain.hostname in taken or holder.held_by_another(domain):
            settled.append(dataclasses.replace(outcome, plan=_taken_plan(domain, plan)))
            continue
        free_at = holder.cooldown_ends(domain.tenant_id)
        if free_at is not None and outcome.now < free_at:
            settled.append(
                dataclasses.replace(outcome, plan=_cooldown_plan(plan, free_at, outcome.now))
            )
            continue
        taken.add(domain.hostname)
        settled.append(outcome)
    return settled


@dataclasses.dataclass(slots=True)
class _Holders:
    """Who holds one hostname, or held it: its proven claims, live and removed."""

    held: list[int] = dataclasses.field(default_factory=list)  # ids of its held claims
    removed: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (tenant, at)

    def held_by_another(self, domain: Domain) -> bool:
        return any(held != domain.id for held in self.held)

    def cooldown_ends(self, tenant_id: int) -> float | None:
        """When the cool-down of another tenant's latest removed proven claim ends."""
        ends = [at for tenant, at in self.removed if tenant != tenant_id]
        return max(ends) + COOLDOWN_SECONDS if ends else None


async def _holders(conn: Connection, hostnames: Iterable[str]) -> dict[str, _Holders]:
    """The proven claims on `hostnames`, read in a statement per few hundred names: a batch of
    checks that verify costs a round trip, not one per name."""
    found: dict[str, _Holders] = {}
    for chunk in in_lists.chunks(hostnames):
        async with conn.execute(
            "SELECT hostname, id, tenant_id, status, removed_at FROM domains"
            f" WHERE hostname IN ({in_lists.marks(chunk)}) AND (status IN {_HELD}"
            " OR (status = 'removed' AND verified_at IS NOT NULL))",
            chunk,
        ) as cursor:
            async for row in cursor:
                holder = found.setdefault(str(row[0]), _Holders())
                if row[3] != "removed":
                    holder.held.append(int(row[1]))
                elif row[4] is not None:  # as max(removed_at) skips it: no time, no cool-down
                    holder.removed.append((int(row[2]), float(row[4])))
    return found


def _taken_message(hostname: str) -> str:
    return (
        f"{hostname} has been verified by another tenant, who now holds it; this claim can "
        "no longer be verified"
    )


def _taken_plan(domain: Domain, plan: CheckPlan) -> CheckPlan:
    message = _taken_message(domain.hostname)
    # A pending claim fails; a failed one stays failed, saying why.
    move = (
        Move(source=domain.status, target=Status.FAILED, reason=HOSTNAME_TAKEN, message=message)
        if domain.status is Status.PENDING
        else None
    )
    return dataclasses.replace(
        plan,
        move=move,
        last_check_code=HOSTNAME_TAKEN,
        last_check_message=message,
    )


def _cooldown_plan(plan: CheckPlan, free_at: float, now: float) -> CheckPlan:
    wait = max(1, math.ceil(free_at - now))
    return dataclasses.replace(
        plan,
        move=None,
        last_check_code=HOSTNAME_COOLDOWN,
        last_check_message=(
            f"another tenant's verified claim on this name was removed recently; it can be "
            f"verified for this tenant in {wait} s"
        ),
        next_check_at=free_at,
    )


async def fail_rivals(conn: Connection, winners: Sequence[CheckOutcome]) -> None:
    """Other tenants' pending and failed claims on the names `winners` have just verified: a
    pending one moves to failed with `hostname_taken` (its event and webhook in this same
    transaction), a failed one says why it stays failed."""
    rivals: dict[str, list[Domain]] = {}
    for chunk in in_lists.chunks(winner.domain.hostname for winner in winners):
        async with conn.execute(
            f"{DOMAIN_SELECT} WHERE d.hostname IN ({in_lists.marks(chunk)})"
            " AND d.status IN ('pending', 'failed') ORDER BY d.id",
            chunk,
        ) as cursor:
            async for row in cursor:
                domain = Domain.from_row(row)
                rivals.setdefault(domain.hostname, []).append(domain)
    updates: list[tuple[object, ...]] = []
    moves: list[domain_store.MoveAt] = []
    for winner in winners:
        message = _taken_message(winner.domain.hostname)
        found = [r for r in rivals.get(winner.domain.hostname, ()) if r.id != winner.domain.id]
        updates += [
            (
                HOSTNAME_TAKEN,
                message,
                winner.now,
                winner.plan.next_check_at,
                rival.id,
                rival.status.value,
            )
            for rival in found
        ]
        moves += [
            (
                rival.id,
                Move(
                    source=rival.status,
                    target=Status.FAILED,
                    reason=HOSTNAME_TAKEN,
                    message=message,
                ),
                winner.now,
            )
            for rival in found
            if rival.status is Status.PENDING
        ]
    if updates:
        await conn.executemany(
            "UPDATE domains SET last_check_code = ?, last_check_message = ?, updated_at = ?,"
            " next_check_at = ? WHERE id = ? AND status = ?",
            updates,
        )
    await domain_store.move_many(conn, moves)
