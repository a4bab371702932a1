"""The domain repository: attach, read, list, move states, remove.

Every state move is a `lifecycle.Move` (checked against `states.TRANSITIONS` when it is made),
written by `transition()` or `move_many()` with a compare-and-set on its source status, its event
logged in the same transaction.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from domaingate.claims import ATTACH_LIMIT_PER_TENANT
from domaingate.errors import (
    DomainNotFound,
    HostnameAlreadyRegistered,
    QuotaExceeded,
    VerifyRateLimited,
)
from domaingate.hostnames import Hostname, Kind
from domaingate.lifecycle.moves import Move
from domaingate.states import Status
from domaingate.store import apps, claims, events, in_lists
from domaingate.store.abc import Connection, Database, Reader
from domaingate.store.errors import StoreConflict
from domaingate.store.models import DOMAIN_SELECT, Domain, Tenant
from domaingate.times import Clock

VERIFY_WINDOW_SECONDS = 3600
VERIFY_LIMIT_PER_DOMAIN = 5
VERIFY_LIMIT_PER_TENANT = 10


def new_txt_token() -> str:
    return "dg_" + secrets.token_hex(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachPolicy:
    require_txt: bool
    quota: int
    first_check_in: float
    app_quota: int | None = None  # None: no cap per app
    hourly_attaches: int = ATTACH_LIMIT_PER_TENANT


async def attach(
    db: Database, tenant: Tenant, host: Hostname, app: str, policy: AttachPolicy, clock: Clock
) -> Domain:
    try:
        async with db.write() as conn:
            return await _attach_in(conn, tenant, host, app, policy, clock())
    except StoreConflict as exc:
        # Another process won the race between our claim check and the insert: the unique
        # index of live names refused the second one.
        raise HostnameAlreadyRegistered(host.name) from exc


async def _attach_in(
    conn: Connection, tenant: Tenant, host: Hostname, app: str, policy: AttachPolicy, now: float
) -> Domain:
    method = "txt" if host.kind is Kind.APEX or policy.require_txt else "cname"
    await apps.require_owned(conn, tenant.id, app)
    await claims.check_claimable(conn, tenant, host.name, now)
    async with conn.execute(
        "SELECT count(*) FROM domains WHERE tenant_id = ? AND status != 'removed'",
        (tenant.id,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None and row[0] >= policy.quota:
        raise QuotaExceeded(policy.quota)
    # Counted in the same write transaction as the insert, like the tenant's quota, so
    # concurrent attaches cannot all slip under the cap.
    if policy.app_quota is not None:
        async with conn.execute(
            "SELECT count(*) FROM domains WHERE tenant_id = ? AND app = ? AND status != 'removed'",
            (tenant.id, app),
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] >= policy.app_quota:
            raise QuotaExceeded(policy.app_quota, app=app)
    await claims.check_attach_rate(conn, tenant, now, policy.hourly_attaches)
    cursor = await conn.execute(
        "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
        " created_at, updated_at, next_check_at, failing_since)"
        " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
        (
            host.name,
            tenant.id,
            app,
            host.kind.value,
            method,
            new_txt_token(),
            now,
            now,
            now + policy.first_check_in,
            now,
        ),
    )
    domain_id = cursor.lastrowid
    assert domain_id is not None
    await events.record_many(
        conn,
        [
            events.NewEvent(
                domain_id=domain_id,
                source=None,
                target=Status.PENDING,
                reason=None,
                message="domain attached",
                now=now,
                kind="domain.created",
            )
        ],
    )
    return await get_by_id_in(conn, domain_id)


async def get_by_id_in(conn: Connection | Reader, domain_id: int) -> Domain:
    """The domain with row id `domain_id`, read on `conn` (in its transaction) or the reader."""
    async with conn.execute(f"{DOMAIN_SELECT} WHERE d.id = ?", (domain_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise LookupError(f"no domain with id {domain_id}")
    return Domain.from_row(row)


async def get_by_id(db: Database, domain_id: int) -> Domain:
    return await get_by_id_in(db.reader, domain_id)


async def get(db: Database, hostname: str, tenant_id: int | None) -> Domain:
    """The live domain `hostname`, seen by `tenant_id` (None: any tenant). Else DomainNotFound.

    Across tenants a name may have several claims: the one that holds it (proven) comes first,
    else the oldest.
    """
    sql = f"{DOMAIN_SELECT} WHERE d.hostname = ? AND d.status != 'removed'"
    params: tuple[Any, ...] = (hostname,)
    if tenant_id is not None:
        sql += " AND d.tenant_id = ?"
        params += (tenant_id,)
    sql += " ORDER BY d.status IN ('verified', 'active', 'expiring') DESC, d.id LIMIT 1"
    async with db.reader.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise DomainNotFound(hostname)
    return Domain.from_row(row)


async def list_page(
    db: Database,
    *,
    tenant_id: int | None,
    app: str | None = None,
    status: Status | None = None,
    limit: int = 100,
    after_id: int = 0,
) -> list[Domain]:
    """Live domains, oldest first, after the row id `after_id` (the cursor)."""
    clauses = ["d.id > ?"]
    params: list[Any] = [after_id]
    if status is Status.REMOVED:
        return []
    clauses.append("d.status = ?" if status else "d.status != 'removed'")
    if status:
        params.append(status.value)
    if tenant_id is not None:
        clauses.append("d.tenant_id = ?")
        params.append(tenant_id)
    if app is not None:
        clauses.append("d.app = ?")
        params.append(app)
    sql = f"{DOMAIN_SELECT} WHERE {' AND '.join(clauses)} ORDER BY d.id LIMIT ?"
    params.append(limit)
    async with db.reader.execute(sql, params) as cursor:
        return [Domain.from_row(row) async for row in cursor]


# A move to write: the domain's id, the move, and when it is made.
MoveAt = tuple[int, Move, float]


def _move_statement(target: Status) -> str:
    sets = "status = ?, updated_at = ?"
    if target is Status.VERIFIED:
        sets += ", verified_at = ?"
    elif target is Status.REMOVED:
        sets += ", removed_at = ?, next_check_at = NULL"
    # The compare-and-set: only from the status the move starts from.
    return f"UPDATE domains SET {sets} WHERE id = ? AND status = ?"


def _move_params(domain_id: int, move: Move, now: float) -> tuple[Any, ...]:
    when = (now,) if move.target in (Status.VERIFIED, Status.REMOVED) else ()
    return (move.target.value, now, *when, domain_id, move.source.value)


def _move_event(domain_id: int, move: Move, now: float) -> events.NewEvent:
    return events.NewEvent(
        domain_id=domain_id,
        source=move.source,
        target=move.target,
        reason=move.reason,
        message=move.message,
        now=now,
    )


async def transition(
    conn: Connection,
    domain: Domain,
    target: Status,
    *,
    reason: str | None,
    message: str | None,
    now: float,
) -> bool:
    """Move `domain` to `target` if it is still in the status it was read with.

    Returns False (and changes nothing) when another writer moved it first.
    """
    move = Move(source=domain.status, target=target, reason=reason, message=message)
    cursor = await conn.execute(_move_statement(target), _move_params(domain.id, move, now))
    if cursor.rowcount != 1:
        return False
    await events.record_many(conn, [_move_event(domain.id, move, now)])
    return True


async def move_many(conn: Connection, moves: Sequence[MoveAt]) -> None:
    """Make moves whose domains the caller has seen, in this transaction, in each move's source
    status (a domain's second move starts where its first ends).

    No compare-and-set result per row (executemany has none): the caller's read inside the
    same write transaction is what guarantees each update matches.
    """
    # Runs of the same statement go in one executemany, in order: a domain's second move must
    # follow its first.
    run: list[tuple[Any, ...]] = []
    statement = ""
    for domain_id, move, now in moves:
        if _move_statement(move.target) != statement and run:
            await conn.executemany(statement, run)
            run = []
        statement = _move_statement(move.target)
        run.append(_move_params(domain_id, move, now))
    if run:
        await conn.executemany(statement, run)
    await events.record_many(conn, [_move_event(*move) for move in moves])


async def unchanged(conn: Connection, domains: Sequence[Domain]) -> list[bool]:
    """For each domain (as it was read earlier), whether it still has that status: the
    compare-and-set of a batched write, read inside its write transaction. A domain that appears
    twice counts once, at its first place."""
    current = await _statuses(conn, (domain.id for domain in domains))
    seen: set[int] = set()
    result = []
    for domain in domains:
        result.append(current.get(domain.id) == domain.status.value and domain.id not in seen)
        seen.add(domain.id)
    return result


async def _statuses(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    """id → status of the given domains, read on `conn` (inside its transaction)."""
    found: dict[int, str] = {}
    for chunk in in_lists.chunks(ids):
        async with conn.execute(
            f"SELECT id, status FROM domains WHERE id IN ({in_lists.marks(chunk)})", chunk
        ) as cursor:
            found.update({int(row[0]): str(row[1]) async for row in cursor})
    return found


async def remove(db: Database, domain: Domain, clock: Clock) -> Domain:
    """Detach `domain` from whatever status it is in now; DomainNotFound once it is removed.

    Its status is read again inside the write transaction, where no other writer can move it:
    one that moved it since `domain` was read (a check, the certificate scan) must not turn
    the detach into a 404 that leaves the name attached.
    """
    async with db.write() as conn:
        try:
            current = await get_by_id_in(conn, domain.id)
        except LookupError:  # removed and purged since
            raise DomainNotFound(domain.hostname) from None
        if current.status is Status.REMOVED:
            raise DomainNotFound(domain.hostname)
        moved = await transition(
            conn, current, Status.REMOVED, reason=None, message="domain detached", now=clock()
        )
        assert moved, "no other writer runs inside this transaction"
        return await get_by_id_in(conn, domain.id)


async def consume_verify_allowance(
    db: Database, tenant_id: int, hostname: str, clock: Clock
) -> None:
    """Count one verification request, or raise VerifyRateLimited (nothing counted).

    Counting and checking share one write transaction, so concurrent requests cannot all slip
    under the limit. The per-domain limit counts the claim's own requests (this tenant's, on
    this name): counted by name alone, another tenant claiming it could spend them all.
    """
    async with db.write() as conn:
        now = clock()
        since = now - VERIFY_WINDOW_SECONDS
        scopes: tuple[tuple[str, str, tuple[Any, ...], int], ...] = (
            (
                "domain",
                "tenant_id = ? AND hostname = ?",
                (tenant_id, hostname),
                VERIFY_LIMIT_PER_DOMAIN,
            ),
            ("tenant", "tenant_id = ?", (tenant_id,), VERIFY_LIMIT_PER_TENANT),
        )
        for scope, where, keys, limit in scopes:
            async with conn.execute(
                f"SELECT count(*), min(at) FROM (SELECT at FROM verify_attempts"
                f" WHERE {where} AND at > ? ORDER BY at DESC LIMIT ?) AS recent",
                (*keys, since, limit),
            ) as cursor:
                row = await cursor.fetchone()
            assert row is not None
            if row[0] >= limit:
                retry_after = max(1, math.ceil(row[1] + VERIFY_WINDOW_SECONDS - now))
                raise VerifyRateLimited(scope, retry_after)
        await conn.execute(
            "INSERT INTO verify_attempts (tenant_id, hostname, at) VALUES (?, ?, ?)",
            (tenant_id, hostname, now),
        )
        # Old attempts only matter for an hour.
        await conn.execute("DELETE FROM verify_attempts WHERE at <= ?", (since,))


async def count_by_status(db: Database) -> dict[str, int]:
    """How many domains each status has (statuses without one are left out)."""
    async with db.reader.execute("SELECT status, count(*) FROM domains GROUP BY status") as cursor:
        return {str(row[0]): int(row[1]) async for row in cursor}
