"""The domain repository: attach, read, list, remove.

The rules an attach follows are decided in `domaingate.lifecycle` (who may claim the name, its
verification method and token, the rate limits); here they are read for and written. State
moves are written by `domaingate.store.moves`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domaingate.errors import DomainNotFound, HostnameAlreadyRegistered, QuotaExceeded
from domaingate.hostnames import Hostname
from domaingate.lifecycle import ownership
from domaingate.lifecycle.limits import ATTACH_LIMIT_PER_TENANT
from domaingate.models import Domain, Tenant
from domaingate.states import Status
from domaingate.store import apps, events, holders, limits, moves, rows
from domaingate.store.abc import Connection, Database, Reader
from domaingate.store.errors import StoreConflict
from domaingate.store.rows import DOMAIN_SELECT
from domaingate.store.scopes import Scope
from domaingate.store.statuses import COUNT_BY_STATUS, HELD
from domaingate.times import Clock


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
        # The name's lock for the claim rules, the tenant's for its quotas and attach rate.
        async with db.write(Scope.hostname(host.name), Scope.tenant(tenant.id)) as conn:
            return await _attach_in(conn, tenant, host, app, policy, clock())
    except StoreConflict as exc:
        # Another process won the race between our claim check and the insert: the unique
        # index of live names refused the second one.
        raise HostnameAlreadyRegistered(host.name) from exc


async def _attach_in(
    conn: Connection, tenant: Tenant, host: Hostname, app: str, policy: AttachPolicy, now: float
) -> Domain:
    method = ownership.verification_method(host.kind, require_txt=policy.require_txt)
    await apps.require_owned(conn, tenant.id, app)
    await holders.check_claimable(conn, tenant, host.name, now)
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
    await limits.check_attach_rate(conn, tenant, now, policy.hourly_attaches)
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
            ownership.new_txt_token(),
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
    return rows.domain(row)


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
    sql += f" ORDER BY d.status IN {HELD} DESC, d.id LIMIT 1"
    async with db.reader.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise DomainNotFound(hostname)
    return rows.domain(row)


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
        return [rows.domain(row) async for row in cursor]


async def remove(db: Database, domain: Domain, clock: Clock) -> Domain:
    """Detach `domain` from whatever status it is in now; DomainNotFound once it is removed.

    Its status is read again inside the write transaction, holding the name's lock, where no
    other writer can move it:
    one that moved it since `domain` was read (a check, the certificate scan) must not turn
    the detach into a 404 that leaves the name attached.
    """
    async with db.write(Scope.hostname(domain.hostname)) as conn:
        try:
            current = await get_by_id_in(conn, domain.id)
        except LookupError:  # removed and purged since
            raise DomainNotFound(domain.hostname) from None
        if current.status is Status.REMOVED:
            raise DomainNotFound(domain.hostname)
        moved = await moves.transition(
            conn, current, Status.REMOVED, reason=None, message="domain detached", now=clock()
        )
        assert moved, "no other writer runs inside this transaction"
        return await get_by_id_in(conn, domain.id)


async def count_by_status(db: Database) -> dict[str, int]:
    """How many domains each status has (statuses without one are left out)."""
    async with db.reader.execute(COUNT_BY_STATUS) as cursor:
        return {str(row[0]): int(row[1]) async for row in cursor}
