"""The gate's request path: `/tls-ask` (Caddy's on-demand TLS ask) and `/route` (forward_auth).

They read only the in-memory allowlist: no DNS, no disk, no lock per request, and this module
imports nothing from the store or the DNS checks (an import-linter contract keeps it so). Their
only path to 200 is an explicit allow; anything unexpected denies (fail closed). Health, readiness
and metrics of the same listener are in `gateway.gate.status`.
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web

from domaingate.hostnames import gate_key
from domaingate.settings import Settings
from gateway.gate.allowlist import Allowlist
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

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

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/tls-ask", self.tls_ask)
        router.add_get("/route", self.route)

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
        app: str | None = None
        try:
            forwarded = request.headers.getall("X-Forwarded-Host", ())
            if len(forwarded) == 1 and allowlist.loaded:
                key = gate_key(_strip_port(forwarded[0]))
                app = allowlist.app_for(key) if key is not None else None
        except Exception:
            log.exception("route failed; refusing")
        if app is not None:
            metrics.route_allowed.inc()
            response = web.Response(
                headers={
                    "X-Domaingate-App": app,
                    "X-Domaingate-Upstream": self._settings.upstream(app),
                }
            )
        else:
            metrics.route_denied.inc()
            response = web.Response(status=404, body=_UNKNOWN_HOST, content_type="text/plain")
        metrics.route_latency.observe(time.perf_counter() - started)
        return response


def _strip_port(host: str) -> str:
    # Caddy sends the client's Host with its port; IPv6 literals never reach an allowed name.
    return _PORT.sub("", host, count=1) if not host.endswith("]") else host
