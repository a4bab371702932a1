"""The gateway's application factories: they wire, and do nothing else.

`create_app()` builds the API application, which owns the shared resources (database, the gate
and its follower, DNS checker) in its cleanup context; `create_internal_listener()` builds the
internal listener (not aiohttp: see gateway.gate.listener) on the same gate. The two are served on
different sockets, so the API listener never answers /tls-ask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from domaingate.dns.checker import DnsChecker
from domaingate.settings import Settings
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.errors import StoreUnreachable
from domaingate.store.late import LateDatabase
from domaingate.times import Clock
from gateway import api_site, ui
from gateway.api import PREFIX, apps, domains, openapi
from gateway.api import status as api_status
from gateway.api.auth import auth_middleware
from gateway.api.errors import error_middleware
from gateway.api.inputs import MAX_BODY
from gateway.caps import connection_caps
from gateway.gate.context import Gate
from gateway.gate.listener import GateListener
from gateway.keys import ALLOWLIST, CAPS, CHECKER, CLOCK, DB, GATE, METRICS, SETTINGS
from gateway.metrics import Metrics
from gateway.timing import timing_middleware

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open the database; one unreachable at start is opened in the background meanwhile (the
    API answers 503 until then; the gate serves its snapshot), rather than stopping the edge."""
    target = app[SETTINGS].db
    db: Database
    try:
        db = await open_database(target, role="gateway")
    except StoreUnreachable as exc:
        log.error("%s; the API answers 503 STORE_UNAVAILABLE until it is reachable", exc)
        late = LateDatabase(target, lambda: open_database(target, role="gateway"))
        late.start()
        db = late
    async with db:
        app[DB] = db
        yield


async def _gate(app: web.Application) -> AsyncIterator[None]:
    async with app[GATE].running():
        yield


def create_api() -> web.Application:
    """The tenant REST API's routes, as the sub-application the API application mounts at
    PREFIX."""
    api = web.Application()
    domains.setup(api)
    apps.setup(api)
    openapi.setup(api)
    api_status.setup(api)
    return api


def create_app(
    settings: Settings, *, clock: Clock = time.time, checker: DnsChecker | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            api_site.middleware,
            timing_middleware("api"),
            error_middleware,
            auth_middleware,
            api_site.body_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = metrics = Metrics()
    app[GATE] = gate = Gate.of(settings, metrics)
    app[ALLOWLIST] = gate.allowlist
    app[CAPS] = caps = connection_caps(settings)
    app[api_site.CONNECTIONS] = api_site.ApiConnections(
        metrics.shedder("api", caps.api), header_timeout=settings.api_header_timeout
    )
    app[CHECKER] = checker if checker is not None else DnsChecker.from_settings(settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_gate)
    app.add_subapp(PREFIX, create_api())
    ui.setup(app)
    return app


def create_internal_listener(api_app: web.Application) -> GateListener:
    """The internal listener (gate, route, health, metrics) on the API app's gate: the same
    allowlist object, so a change made through the API holds at the gate
    when the API answers."""
    return api_app[GATE].listener(api_app[CAPS].internal)
