"""Tenants and their API tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets

from domaingate.errors import InvalidRequest, TenantExists, TenantNotFound
from domaingate.models import Tenant
from domaingate.store import rows
from domaingate.store.abc import Database
from domaingate.store.scopes import Scope
from domaingate.times import Clock

TOKEN_PREFIX = "dgt_"  # noqa: S105 (a prefix, not a secret)
# Also the pattern of the X-Domaingate-Tenant header in the OpenAPI document.
TENANT_NAME = r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?"
_TENANT_NAME = re.compile(TENANT_NAME)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(32)


def token_hash(token: str) -> bytes:
    # A 256-bit random token needs no slow hash: SHA-256 makes the stored value useless to a thief
    # and lets the lookup be an indexed equality.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def check_tenant_name(name: str) -> str:
    if not _TENANT_NAME.fullmatch(name):
        raise InvalidRequest(
            f"tenant name {name[:80]!r} must be 1-64 lower-case letters, digits, '-' or '_', "
            "starting and ending with a letter or digit"
        )
    return name


async def create(db: Database, name: str, clock: Clock) -> tuple[Tenant, str]:
    """Create a tenant; returns it and its API token (not stored: it cannot be shown again)."""
    check_tenant_name(name)
    token = new_token()
    async with db.write(Scope.row("tenants", name)) as conn:
        async with conn.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)) as cursor:
            if await cursor.fetchone():
                raise TenantExists(name)
        cursor = await conn.execute(
            "INSERT INTO tenants (name, token_hash, created_at) VALUES (?, ?, ?)",
            (name, token_hash(token), clock()),
        )
        tenant_id = cursor.lastrowid
    assert tenant_id is not None
    return Tenant(id=tenant_id, name=name, created_at=clock(), revoked_at=None), token


async def list_all(db: Database) -> list[Tenant]:
    async with db.reader.execute("SELECT * FROM tenants ORDER BY id") as cursor:
        return [rows.tenant(row) async for row in cursor]


async def get_by_name(db: Database, name: str) -> Tenant:
    async with db.reader.execute("SELECT * FROM tenants WHERE name = ?", (name,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise TenantNotFound(name)
    return rows.tenant(row)


async def revoke(db: Database, name: str, clock: Clock) -> Tenant:
    async with db.write(Scope.row("tenants", name)) as conn:
        await conn.execute(
            "UPDATE tenants SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (clock(), name),
        )
    tenant = await get_by_name(db, name)
    return tenant


async def authenticate(db: Database, token: str) -> Tenant | None:
    """The active tenant holding `token`, or None."""
    async with db.reader.execute(
        "SELECT * FROM tenants WHERE token_hash = ? AND revoked_at IS NULL", (token_hash(token),)
    ) as cursor:
        row = await cursor.fetchone()
    return rows.tenant(row) if row else None
