"""The app registry: which tenant each app belongs to, and the upstream it may name.

Only the platform writes here (the admin token, the command line); a tenant reads its own apps and
attaches domains with them. App names are unique across tenants, so the CNAME target
`{app}.{PLATFORM_ZONE}` that a name points at tells which tenant's app it routes to.
"""

from __future__ import annotations

from domaingate.apps import App
from domaingate.errors import AppInUse, AppNotFound, AppTaken, InvalidApp
from domaingate.models import Tenant
from domaingate.store.abc import Connection, Database, Reader, Row
from domaingate.times import Clock

_SELECT = (
    "SELECT a.name, a.tenant_id, t.name AS tenant, a.upstream, a.created_at, a.updated_at"
    " FROM apps a JOIN tenants t ON t.id = a.tenant_id"
)


def _app(row: Row) -> App:
    return App(
        name=row["name"],
        tenant_id=row["tenant_id"],
        tenant=row["tenant"],
        upstream=row["upstream"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def put(
    db: Database, tenant: Tenant, name: str, upstream: str | None, clock: Clock
) -> tuple[App, bool]:
    """Register `name` for `tenant`, or change its upstream; returns the app and whether it is
    new. An app of another tenant is refused: an app never changes hands while it exists."""
    # No scope: every writer waits. An app's change rewrites the change sequence of all its
    # domains (the gate's triggers), and attaches read the app: a rare write of the platform's.
    async with db.write() as conn:
        now = clock()
        async with conn.execute("SELECT tenant_id FROM apps WHERE name = ?", (name,)) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] != tenant.id:
            raise AppTaken(name)
        if row is None:
            await conn.execute(
                "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, tenant.id, upstream, now, now),
            )
        else:
            await conn.execute(
                "UPDATE apps SET upstream = ?, updated_at = ? WHERE name = ?",
                (upstream, now, name),
            )
        return await _get_in(conn, name), row is None


async def remove(db: Database, tenant: Tenant, name: str) -> None:
    """Remove `tenant`'s app `name`; refused while a live domain (not removed) uses it."""
    # No scope, as `put`: no attach with this app can commit between the count and the delete.
    async with db.write() as conn:
        async with conn.execute(
            "SELECT 1 FROM apps WHERE name = ? AND tenant_id = ?", (name, tenant.id)
        ) as cursor:
            if await cursor.fetchone() is None:
                raise AppNotFound(name)
        async with conn.execute(
            "SELECT count(*) FROM domains WHERE app = ? AND status != 'removed'", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] > 0:
            raise AppInUse(name, int(row[0]))
        await conn.execute("DELETE FROM apps WHERE name = ?", (name,))


async def list_apps(db: Database, tenant_id: int | None) -> list[App]:
    """Apps by name; one tenant's, or everyone's (`tenant_id` None)."""
    where, params = ("", ()) if tenant_id is None else (" WHERE a.tenant_id = ?", (tenant_id,))
    async with db.reader.execute(f"{_SELECT}{where} ORDER BY a.name", params) as cursor:
        return [_app(row) async for row in cursor]


async def _get_in(conn: Connection | Reader, name: str) -> App:
    async with conn.execute(f"{_SELECT} WHERE a.name = ?", (name,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise AppNotFound(name)
    return _app(row)


async def get(db: Database, name: str) -> App | None:
    try:
        return await _get_in(db.reader, name)
    except AppNotFound:
        return None


async def require_owned(conn: Connection, tenant_id: int, name: str) -> None:
    """Raise InvalidApp unless `name` is one of the tenant's apps; the same answer whether the app
    exists for another tenant or not at all, so the answer names nobody's app."""
    async with conn.execute(
        "SELECT 1 FROM apps WHERE name = ? AND tenant_id = ?", (name, tenant_id)
    ) as cursor:
        if await cursor.fetchone() is None:
            raise InvalidApp(
                f"app {name!r} is not one of this tenant's apps; the platform registers apps"
            )


# What the gate reads to allow and route a domain: the domain, the app's own upstream, the
# tenant's name (for UPSTREAM_TEMPLATE), whether the app is the tenant's own, and the change
# sequence. A domain whose app is not its tenant's is never routed.
GATE_SELECT = (
    "SELECT d.id, d.hostname, d.app, d.status, a.upstream, t.name, a.id IS NOT NULL, d.seq"
    " FROM domains d JOIN tenants t ON t.id = d.tenant_id"
    " LEFT JOIN apps a ON a.name = d.app AND a.tenant_id = d.tenant_id"
)
# Every app with its owner, for the gate's load (`AppOwner` rows).
OWNERS = (
    "SELECT a.name, a.tenant_id, a.upstream, t.name"
    " FROM apps a JOIN tenants t ON t.id = a.tenant_id"
)
