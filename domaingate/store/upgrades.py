"""Checks that run before a migration, for data a migration cannot take over on its own.

Each says, in words an operator can act on, why the database cannot be upgraded as it is; nothing
is changed then (the migration's transaction is rolled back).
"""

from __future__ import annotations

from domaingate.store.abc import Connection


async def refusal(conn: Connection, version: int) -> str | None:
    """Why the migration to schema `version` cannot run on this database, or None."""
    if version == 3:
        return await _shared_apps(conn)
    return None


async def _shared_apps(conn: Connection) -> str | None:
    # 003 gives each live domain's app to its tenant; an app name two tenants used would belong
    # to both, and either could route to the other's app.
    # Pairs, grouped here: SQLite and PostgreSQL spell a string aggregate differently.
    async with conn.execute(
        "SELECT DISTINCT d.app, t.name FROM domains d JOIN tenants t ON t.id = d.tenant_id"
        " WHERE d.status != 'removed' AND d.app IN (SELECT app FROM domains"
        " WHERE status != 'removed' GROUP BY app HAVING count(DISTINCT tenant_id) > 1)"
    ) as cursor:
        pairs = [(str(row[0]), str(row[1])) async for row in cursor]
    tenants_of: dict[str, list[str]] = {}
    for app, tenant in pairs:
        tenants_of.setdefault(app, []).append(tenant)
    shared = sorted(tenants_of.items())
    if not shared:
        return None
    listed = "; ".join(
        f"app {app!r} is used by tenants {', '.join(sorted(names))}" for app, names in shared
    )
    return (
        f"apps now belong to one tenant each, but {listed}. With the release in use before this "
        "one, detach the domains of all but one of those tenants from each such app "
        "(domaingate domains remove NAME), then upgrade again"
    )
