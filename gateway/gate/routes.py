"""The internal listener's routes: the TLS gate, forward_auth routing, health and metrics.

`/tls-ask` and `/route` read only the in-memory allowlist. Their only path to 200 is an explicit
allow; anything unexpected denies (fail closed).
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from domaingate.hostnames import gate_key
from domaingate.settings import Settings
from gateway.gate.allowlist import Allowlist
from gateway.keys import ALLOWLIST, API_APP, DB, METRICS, SETTINGS
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

# Readiness: the gate is only trusted while its view of the database is this fresh.
MAX_SYNC_AGE = 5.0
_PORT = re.compile(r":[0-9]{1,5}$")


_ALLOWED = b"allowed\n"
_DENIED = b"denied\n"
_UNKNOWN_HOST = b"unknown host\n"


class GateRoutes:
    """`/tls-ask` and `/route`, bound once to the allowlist, metrics and settings they read.

    Bound methods rather than lookups on `request.app` per request: on the handshake path every
    attribute and key lookup is a measurable share of the answer's cost.
    """

    def __init__(self, allowlist: Allowlist, metrics: Metrics, settings: Settings) -> None:
        self._allowlist = allowlist
        self._metrics = metrics
        self._settings = settings

    async def tls_ask(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        allowlist, metrics = self._allowlist, self._metrics
        allowed = False
        try:
            values = request.query.getall("domain", ())
            # Exactly one name: with several, which one Caddy meant is unknowable.
            if len(values) == 1 and allowlist.loaded:
                key = gate_key(values[0])
                allowed = key is not None and key in allowlist
        except Exception:
            log.exception("tls-ask failed; denying")
        if allowed:
            metrics.ask_allowed.inc()
            response = web.Response(body=_ALLOWED, content_type="text/plain")
        else:
            metrics.ask_denied.inc()
            response = web.Response(status=403, body=_DENIED, content_type="text/plain")
        metrics.ask_latency.observe(time.perf_counter() - started)
        return response

    async def route(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        allowlist, metrics = self._allowlist, self._metrics
        found: tuple[str, str] | None = None
        try:
            forwarded = request.headers.getall("X-Forwarded-Host", ())
            if len(forwarded) == 1 and allowlist.loaded:
                key = gate_key(_strip_port(forwarded[0]))
                found = allowlist.route_for(key) if key is not None else None
        except Exception:
            log.exception("route failed; refusing")
        if found is not None:
            metrics.route_allowed.inc()
            app, upstream = found
            response = web.Response(
                headers={"X-Domaingate-App": app, "X-Domaingate-Upstream": upstream}
            )
        else:
            metrics.route_denied.inc()
            response = web.Response(status=404, body=_UNKNOWN_HOST, content_type="text/plain")
        metrics.route_latency.observe(time.perf_counter() - started)
        return response


def _strip_port(host: str) -> str:
    # Caddy sends the client's Host with its port; IPv6 literals never reach an allowed name.
    return _PORT.sub("", host, count=1) if not host.endswith("]") else host


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _sync_age(request: web.Request) -> float:
    allowlist = request.app[ALLOWLIST]
    return time.monotonic() - allowlist.synced_at if allowlist.loaded else float("inf")


async def readyz(request: web.Request) -> web.Response:
    allowlist = request.app[ALLOWLIST]
    age = _sync_age(request)
    ready = allowlist.loaded and age <= MAX_SYNC_AGE
    body = {
        "ready": ready,
        "allowed_hostnames": len(allowlist),
        "sync_age_seconds": round(age, 3) if age != float("inf") else None,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    registry.allowlist_size.set(len(request.app[ALLOWLIST]))
    age = _sync_age(request)
    registry.sync_lag.set(age if age != float("inf") else -1)
    api = request.app[API_APP]
    try:
        async with api[DB].reader.execute(
            "SELECT status, count(*) FROM domains GROUP BY status"
        ) as cursor:
            registry.set_domain_counts({row[0]: row[1] async for row in cursor})
    except Exception:
        # Counts are a convenience; the gate's own figures must still be scrapeable.
        log.exception("could not count domains for /metrics")
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    gate = GateRoutes(app[ALLOWLIST], app[METRICS], app[SETTINGS])
    app.router.add_get("/tls-ask", gate.tls_ask)
    app.router.add_get("/route", gate.route)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
