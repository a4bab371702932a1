"""Who is calling and what they may use (`GET /api/v1/account`), and the operator's health view
of the reconciler's work and its jobs' last runs (`GET /api/v1/status`, admin token only). Both
only read the store."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domaingate.store import overview, runs
from domaingate.times import rfc3339, rfc3339_or_none
from gateway.api.auth import PRINCIPAL
from gateway.keys import CLOCK, DB, SETTINGS

# A live domain whose next check is this late means the reconciler is not keeping up (or is down).
CHECK_LATE_AFTER = 300.0


async def account(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    settings = request.config_dict[SETTINGS]
    tenant = principal.tenant
    usage: dict[str, Any] | None = None
    if tenant is not None:
        found = await overview.usage(request.config_dict[DB], tenant.id)
        usage = {
            "domains": found.domains,
            "apps": [{"app": app, "domains": n} for app, n in found.per_app.items()],
        }
    return web.json_response(
        {
            "admin": principal.admin,
            "tenant": tenant.name if tenant is not None else None,
            "limits": {
                "max_domains_per_tenant": settings.max_domains_per_tenant,
                "max_domains_per_app": settings.max_domains_per_app,
            },
            "usage": usage,
            "now": rfc3339(request.config_dict[CLOCK]()),
        }
    )


async def status(request: web.Request) -> web.Response:
    request[PRINCIPAL].require_admin("the reconciler's status")
    now = request.config_dict[CLOCK]()
    health = await overview.health(request.config_dict[DB], now, CHECK_LATE_AFTER)
    lease = health.lease
    scan_every = request.config_dict[SETTINGS].cert_scan_interval
    last_runs = [
        {
            "job": run.job,
            "last_run_at": rfc3339_or_none(run.last_run_at),
            "last_ok_at": rfc3339_or_none(run.last_ok_at),
            "last_error": run.last_error,
            "late": runs.is_late(run, now, scan_every),
        }
        for run in await runs.last_runs(request.config_dict[DB])
    ]
    return web.json_response(
        {
            "reconciler": {
                "lease_held": lease is not None and lease.expires_at > now,
                "holder": lease.holder if lease is not None else None,
                "lease_expires_at": rfc3339(lease.expires_at) if lease is not None else None,
                "lease_token": lease.token if lease is not None else None,
                "last_check_at": rfc3339_or_none(health.last_check_at),
                "checks_overdue": health.checks_overdue,
            },
            "outbox": {
                "backlog": health.outbox_backlog,
                "oldest_at": rfc3339_or_none(health.oldest_undelivered_at),
            },
            "counts": health.counts,
            "runs": last_runs,
            "now": rfc3339(now),
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/account", account)
    app.router.add_get("/status", status)
