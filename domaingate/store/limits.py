"""The API's rate limits in the store: counting a window's requests inside the write transaction
that records the new one, so that concurrent requests cannot all slip under a limit. The rule
that decides from the count is `domaingate.lifecycle.limits`."""

from __future__ import annotations

from typing import Any

from domaingate.errors import AttachRateLimited, VerifyRateLimited
from domaingate.lifecycle.limits import (
    ATTACH_LIMIT_PER_TENANT,
    ATTACH_WINDOW_SECONDS,
    VERIFY_LIMIT_PER_DOMAIN,
    VERIFY_LIMIT_PER_TENANT,
    VERIFY_WINDOW_SECONDS,
    retry_after,
)
from domaingate.models import Tenant
from domaingate.store.abc import Connection, Database
from domaingate.store.scopes import Scope
from domaingate.times import Clock


async def _window(conn: Connection, sql: str, parameters: tuple[Any, ...]) -> tuple[int, float]:
    """(count, oldest) of the window's most recent requests that `sql` selects."""
    async with conn.execute(sql, parameters) as cursor:
        row = await cursor.fetchone()
    assert row is not None  # an aggregate always answers a row
    return int(row[0]), row[1]


async def check_attach_rate(
    conn: Connection, tenant: Tenant, now: float, limit: int = ATTACH_LIMIT_PER_TENANT
) -> None:
    """Raise AttachRateLimited when `tenant` attached `limit` domains within the last hour.

    Counted from the domains' own rows (removed rows are kept far longer than the hour), so an
    attach-and-detach loop is counted as surely as attaches that stay.
    """
    recent, oldest = await _window(
        conn,
        "SELECT count(*), min(created_at) FROM (SELECT created_at FROM domains"
        " WHERE tenant_id = ? AND created_at > ? ORDER BY created_at DESC LIMIT ?) AS recent",
        (tenant.id, now - ATTACH_WINDOW_SECONDS, limit),
    )
    wait = retry_after(recent, oldest, limit=limit, window=ATTACH_WINDOW_SECONDS, now=now)
    if wait is not None:
        raise AttachRateLimited(limit, wait)


async def consume_verify_allowance(
    db: Database, tenant_id: int, hostname: str, clock: Clock
) -> None:
    """Count one verification request, or raise VerifyRateLimited (nothing counted).

    The per-domain limit counts the claim's own requests (this tenant's, on this name): counted
    by name alone, another tenant claiming it could spend them all.
    """
    # The tenant's lock: both windows count only this tenant's rows.
    async with db.write(Scope.tenant(tenant_id)) as conn:
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
            recent, oldest = await _window(
                conn,
                f"SELECT count(*), min(at) FROM (SELECT at FROM verify_attempts"
                f" WHERE {where} AND at > ? ORDER BY at DESC LIMIT ?) AS recent",
                (*keys, since, limit),
            )
            wait = retry_after(recent, oldest, limit=limit, window=VERIFY_WINDOW_SECONDS, now=now)
            if wait is not None:
                raise VerifyRateLimited(scope, wait)
        await conn.execute(
            "INSERT INTO verify_attempts (tenant_id, hostname, at) VALUES (?, ?, ?)",
            (tenant_id, hostname, now),
        )
        # Old attempts only matter for an hour. Only this tenant's: deleting everyone's would make
        # tenants' requests wait for each other's row locks.
        await conn.execute(
            "DELETE FROM verify_attempts WHERE tenant_id = ? AND at <= ?", (tenant_id, since)
        )
