"""Who is calling: a tenant's token, or the admin token acting for a named tenant or for all.

No token, or one that is unknown or revoked, is 401 `UNAUTHORIZED` before any route runs; a
valid token without the right a route needs (a tenant's on an admin-only one) is 403 `FORBIDDEN`,
through `Principal.require_admin`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from domaingate.errors import Forbidden, InvalidRequest, TenantNotFound, Unauthorized
from domaingate.models import Tenant
from domaingate.store import tenants
from gateway.api import PREFIX
from gateway.keys import DB, SETTINGS

TENANT_HEADER = "X-Domaingate-Tenant"
MAX_TOKEN_LENGTH = 512
PUBLIC_PATHS = frozenset({f"{PREFIX}/openapi.json"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    tenant: Tenant | None  # None only for the admin acting across all tenants
    admin: bool

    @property
    def tenant_id(self) -> int | None:
        return self.tenant.id if self.tenant is not None else None

    def require_admin(self, what: str) -> Principal:
        """This principal, when it holds the admin token; `what` names the refused operation."""
        if not self.admin:
            raise Forbidden(f"{what} needs the admin token")
        return self

    def require_tenant(self) -> Tenant:
        if self.tenant is None:
            raise InvalidRequest(f"the admin token must name a tenant in {TENANT_HEADER} for this")
        return self.tenant


PRINCIPAL = web.RequestKey("principal", Principal)


def _bearer(request: web.Request) -> str:
    values = request.headers.getall("Authorization", [])
    if len(values) != 1:
        raise Unauthorized("send one 'Authorization: Bearer <token>' header")
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("send one 'Authorization: Bearer <token>' header")
    return token


def _named_tenant(request: web.Request) -> str | None:
    values = request.headers.getall(TENANT_HEADER, [])
    # Two copies name no one tenant. Taking either would let a client's own copy win over the
    # one a proxy in front of the API adds (or the other way round), so refuse, as for
    # Authorization.
    if len(values) > 1:
        raise InvalidRequest(f"send at most one {TENANT_HEADER} header")
    return values[0] if values else None


async def authenticate(request: web.Request) -> Principal:
    token = _bearer(request)
    settings = request.config_dict[SETTINGS]
    db = request.config_dict[DB]
    admin = settings.admin_token
    # surrogateescape: header bytes that are not UTF-8 arrive as lone surrogates.
    if admin is not None and hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), admin.encode()
    ):
        named = _named_tenant(request)
        if named is None:
            return Principal(tenant=None, admin=True)
        try:
            # A name that cannot exist (bytes that are not UTF-8 among them) names no tenant.
            tenant = await tenants.get_by_name(db, tenants.check_tenant_name(named))
        except (TenantNotFound, InvalidRequest) as exc:
            raise InvalidRequest(f"{TENANT_HEADER} names no tenant: {exc.message}") from exc
        if tenant.revoked_at is not None:
            raise InvalidRequest(f"{TENANT_HEADER}: tenant {named!r} is revoked")
        return Principal(tenant=tenant, admin=True)
    holder = await tenants.authenticate(db, token)
    if holder is None:
        raise Unauthorized("the token is unknown or revoked")
    named = _named_tenant(request)
    if named is not None and named != holder.name:
        raise InvalidRequest(f"{TENANT_HEADER} is for the admin token only")
    return Principal(tenant=holder, admin=False)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PUBLIC_PATHS and request.path.startswith("/api/"):
        request[PRINCIPAL] = await authenticate(request)
    return await handler(request)
