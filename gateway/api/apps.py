"""The routes of the app resource: a tenant reads its apps; the platform registers and removes them.

Writing needs the admin token acting for the tenant named in X-Domaingate-Tenant: apps decide
where traffic goes, so no tenant chooses one, nor its upstream.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domaingate.apps import App, check_app, check_upstream
from domaingate.errors import InvalidRequest
from domaingate.store import apps as store
from domaingate.times import rfc3339
from gateway.api import inputs
from gateway.api.auth import PRINCIPAL, Principal
from gateway.keys import CLOCK, DB


def app_json(app: App, *, with_tenant: bool) -> dict[str, Any]:
    """`upstream` is the app's own (null: /route names UPSTREAM_TEMPLATE's)."""
    body: dict[str, Any] = {"app": app.name, "upstream": app.upstream}
    if with_tenant:
        body["tenant"] = app.tenant
    return body


def _platform(request: web.Request) -> Principal:
    return request[PRINCIPAL].require_admin("apps are registered by the platform: this")


async def list_apps(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    found = await store.list_apps(request.config_dict[DB], principal.tenant_id)
    return web.json_response(
        {
            "apps": [app_json(app, with_tenant=principal.tenant is None) for app in found],
            "now": rfc3339(request.config_dict[CLOCK]()),
        }
    )


async def put_app(request: web.Request) -> web.Response:
    tenant = _platform(request).require_tenant()
    name = check_app(request.match_info["app"])
    data = await inputs.read_json_object(request) if await request.read() else {}
    unknown = sorted(set(data) - {"upstream"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)[:200]}", fields=unknown[:20])
    raw = data.get("upstream")
    upstream = None if raw is None else check_upstream(raw)
    app, created = await store.put(
        request.config_dict[DB], tenant, name, upstream, request.config_dict[CLOCK]
    )
    body = app_json(app, with_tenant=False)
    body["now"] = rfc3339(request.config_dict[CLOCK]())
    return web.json_response(body, status=201 if created else 200)


async def delete_app(request: web.Request) -> web.Response:
    tenant = _platform(request).require_tenant()
    name = check_app(request.match_info["app"])
    await store.remove(request.config_dict[DB], tenant, name)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/apps", list_apps)
    app.router.add_put("/apps/{app}", put_app)
    app.router.add_delete("/apps/{app}", delete_app)
