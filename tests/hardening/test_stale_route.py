"""A name with a certificate already in Caddy's memory is served without asking /tls-ask: what
keeps its requests from reaching an upstream once the gate may no longer vouch for it is
`/route` (forward_auth) refusing them. So past GATE_MAX_STALENESS, `/route` refuses what
`/tls-ask` denies: a domain removed during an outage must not go on being proxied because its
certificate was cached before the outage began."""

from __future__ import annotations

import time

from gateway.gate.allowlist import Allowlist
from gateway.gate.routes import ALLOWED, DENIED, UNKNOWN_HOST, GateRoutes, Request
from gateway.metrics import Metrics

NAME = "shop.acme.com"


def _allowlist(age: float) -> Allowlist:
    allowlist = Allowlist()
    allowlist.apply(1, NAME, "shop", "active", "shop.internal:80")
    allowlist.loaded = True
    allowlist.synced_at = time.monotonic() - age
    return allowlist


def _route(routes: GateRoutes) -> object:
    return routes.route(Request(query=b"", forwarded=(NAME.encode(),)))


def _ask(routes: GateRoutes) -> object:
    return routes.tls_ask(Request(query=f"domain={NAME}".encode(), forwarded=()))


def test_past_gate_max_staleness_route_refuses_what_tls_ask_denies() -> None:
    allowlist = _allowlist(age=30)
    metrics = Metrics()
    routes = GateRoutes(allowlist, metrics, max_staleness=60)
    assert _ask(routes) is ALLOWED
    assert _route(routes) is not UNKNOWN_HOST

    allowlist.synced_at = time.monotonic() - 61
    assert _ask(routes) is DENIED
    assert _route(routes) is UNKNOWN_HOST

    allowlist.synced_at = time.monotonic()  # the database is back: served again
    assert _route(routes) is not UNKNOWN_HOST


def test_without_gate_max_staleness_a_stale_view_still_routes() -> None:
    routes = GateRoutes(_allowlist(age=86400), Metrics())
    assert _ask(routes) is ALLOWED
    assert _route(routes) is not UNKNOWN_HOST
