"""The gateway's application factories: they wire, and do nothing else.

`create_app()` builds the API application, which owns the shared resources (database, gate
watcher, DNS checker) in its cleanup context; `create_internal_app()` builds the internal
listener's application on the same resources. The two are served on different sockets, so the
API listener never answers /tls-ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from domaingate.dns.checker import DnsChecker
from domaingate.settings import Settings
from domaingate.store.database import Clock, Database
from gateway.api import domains, openapi
from gateway.api.auth import auth_middleware
from gateway.api.errors import error_middleware
from gateway.api.inputs import MAX_BODY
from gateway.gate import routes as gate_routes
from gateway.gate.allowlist import Allowlist, sync_for
from gateway.keys import ALLOWLIST, API_APP, CHECKER, CLOCK, DB, METRICS, SETTINGS, SYNC
from gateway.metrics import Metrics
from gateway.timing import timing_middleware


async def _database(app: web.Application) -> AsyncIterator[None]:
    async with await Database.open(app[SETTINGS].db) as db:
        app[DB] = db
        yield


async def _gate_sync(app: web.Application) -> AsyncIterator[None]:
    sync = sync_for(app[SETTINGS].db, app[ALLOWLIST], on_error=app[METRICS].sync_errors.inc)
    await sync.open()
    app[SYNC] = sync
    task = asyncio.create_task(sync.run(), name="allowlist-sync")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sync.close()


def create_app(
    settings: Settings, *, clock: Clock = time.time, checker: DnsChecker | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[timing_middleware("api"), error_middleware, auth_middleware],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[ALLOWLIST] = Allowlist()
    app[METRICS] = Metrics()
    app[CHECKER] = checker if checker is not None else DnsChecker.from_settings(settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_gate_sync)
    domains.setup(app)
    openapi.setup(app)
    return app


def create_internal_app(api_app: web.Application) -> web.Application:
    # No middleware on the gate's listener: the timing middleware (and the per-request wrapper
    # aiohttp adds once an app has any) cost ~20% of /tls-ask throughput; the gate's routes
    # time themselves into the same histogram.
    app = web.Application()
    app[API_APP] = api_app
    app[SETTINGS] = api_app[SETTINGS]
    app[ALLOWLIST] = api_app[ALLOWLIST]
    app[METRICS] = api_app[METRICS]
    gate_routes.setup(app)
    return app
