"""The domain repository: attach, read, list, apply check plans, move states, remove.

Every state move goes through `transition()`, which checks the move against `states.TRANSITIONS`,
writes it with a compare-and-set on the old status, and logs its event in the same transaction.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

import aiosqlite

from gateway.errors import (
    DomainNotFound,
    HostnameAlreadyRegistered,
    HostnameCooldownActive,
    InvalidState,
    QuotaExceeded,
    VerifyRateLimited,
)
from gateway.hostnames import Hostname, Kind
from gateway.lifecycle import CheckPlan
from gateway.states import Status, check_move
from gateway.store import events
from gateway.store.database import Clock, Database
from gateway.store.models import DOMAIN_SELECT, Domain, Tenant

COOLDOWN_SECONDS = 48 * 3600
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


async def attach(
    db: Database, tenant: Tenant, host: Hostname, app: str, policy: AttachPolicy, clock: Clock
) -> Domain:
    method = "txt" if host.kind is Kind.APEX or policy.require_txt else "cname"
    async with db.write() as conn:
        now = clock()
        await _check_claimable(conn, tenant, host.name, now)
        async with conn.execute(
            "SELECT count(*) FROM domains WHERE tenant_id = ? AND status != 'removed'",
            (tenant.id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] >= policy.quota:
            raise QuotaExceeded(policy.quota)
        try:
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
        except sqlite3.IntegrityError as exc:
            # Another process won the race between our check and the insert.
            raise HostnameAlreadyRegistered(host.name) from exc
        domain_id = cursor.lastrowid
        assert domain_id is not None
        await events.record(
            conn,
            domain_id=domain_id,
            source=None,
            target=Status.PENDING,
            reason=None,
            message="domain attached",
            now=now,
            kind="domain.created",
        )
        return await _get_by_id(conn, domain_id)


async def _check_claimable(
    conn: aiosqlite.Connection, tenant: Tenant, hostname: str, now: float
) -> None:
    async with conn.execute(
        "SELECT tenant_id, status, removed_at FROM domains WHERE hostname = ?"
        " ORDER BY (status != 'removed') DESC, removed_at DESC LIMIT 1",
        (hostname,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return
    if row["status"] != Status.REMOVED:
        raise HostnameAlreadyRegistered(hostname)
    free_at = row["removed_at"] + COOLDOWN_SECONDS
    if row["tenant_id"] != tenant.id and now < free_at:
        raise HostnameCooldownActive(hostname, retry_after=max(1, math.ceil(free_at - now)))


async def _get_by_id(conn: aiosqlite.Connection, domain_id: int) -> Domain:
    async with conn.execute(f"{DOMAIN_SELECT} WHERE d.id = ?", (domain_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise LookupError(f"no domain with id {domain_id}")
    return Domain.from_row(row)


async def get_by_id(db: Database, domain_id: int) -> Domain:
    return await _get_by_id(db.reader, domain_id)


async def get(db: Database, hostname: str, tenant_id: int | None) -> Domain:
    """The live domain `hostname`, seen by `tenant_id` (None: any tenant). Else DomainNotFound."""
    sql = f"{DOMAIN_SELECT} WHERE d.hostname = ? AND d.status != 'removed'"
    params: tuple[Any, ...] = (hostname,)
    if tenant_id is not None:
        sql += " AND d.tenant_id = ?"
        params += (tenant_id,)
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


async def transition(
    conn: aiosqlite.Connection,
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
    check_move(domain.status, target)
    sets = ["status = ?", "updated_at = ?"]
    params: list[Any] = [target.value, now]
    if target is Status.VERIFIED:
        sets.append("verified_at = ?")
        params.append(now)
    elif target is Status.REMOVED:
        sets += ["removed_at = ?", "next_check_at = NULL"]
        params.append(now)
    cursor = await conn.execute(
        f"UPDATE domains SET {', '.join(sets)} WHERE id = ? AND status = ?",
        (*params, domain.id, domain.status.value),
    )
    if cursor.rowcount != 1:
        return False
    await events.record(
        conn,
        domain_id=domain.id,
        source=domain.status,
        target=target,
        reason=reason,
        message=message,
        now=now,
    )
    return True


async def apply_check(db: Database, domain: Domain, plan: CheckPlan, now: float) -> Domain | None:
    """Write a check plan; None if the domain changed status since it was read (nothing written)."""
    async with db.write() as conn:
        cursor = await conn.execute(
            "UPDATE domains SET last_checked_at = ?, next_check_at = ?, last_check_code = ?,"
            " last_check_message = ?, failure_count = ?, failing_since = ?, dns_provider = ?,"
            " updated_at = ? WHERE id = ? AND status = ?",
            (
                now,
                plan.next_check_at,
                plan.last_check_code,
                plan.last_check_message,
                plan.failure_count,
                plan.failing_since,
                plan.dns_provider,
                now,
                domain.id,
                domain.status.value,
            ),
        )
        if cursor.rowcount != 1:
            return None
        if plan.target is not None and not await transition(
            conn, domain, plan.target, reason=plan.reason, message=plan.message, now=now
        ):
            raise InvalidState(f"{domain.hostname} changed status during the check")
        return await _get_by_id(conn, domain.id)


async def remove(db: Database, domain: Domain, clock: Clock) -> Domain:
    async with db.write() as conn:
        if not await transition(
            conn, domain, Status.REMOVED, reason=None, message="domain detached", now=clock()
        ):
            raise DomainNotFound(domain.hostname)
        return await _get_by_id(conn, domain.id)


async def consume_verify_allowance(
    db: Database, tenant_id: int, hostname: str, clock: Clock
) -> None:
    """Count one verification request, or raise VerifyRateLimited (nothing counted).

    Counting and checking share one write transaction, so concurrent requests cannot all slip
    under the limit.
    """
    async with db.write() as conn:
        now = clock()
        since = now - VERIFY_WINDOW_SECONDS
        for scope, column, key, limit in (
            ("domain", "hostname", hostname, VERIFY_LIMIT_PER_DOMAIN),
            ("tenant", "tenant_id", tenant_id, VERIFY_LIMIT_PER_TENANT),
        ):
            async with conn.execute(
                f"SELECT count(*), min(at) FROM (SELECT at FROM verify_attempts"
                f" WHERE {column} = ? AND at > ? ORDER BY at DESC LIMIT ?)",
                (key, since, limit),
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
