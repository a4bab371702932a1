"""How stale the gate's view is, and what it does about it: /readyz stays ready for Caddy while
the view is stale (the database lost) and says so, `?fresh=1` refuses a stale view, /metrics
exports `domaingate_gate_staleness_seconds`, and GATE_MAX_STALENESS makes /tls-ask deny once the
view is older than the limit (unset: the last known list is served however long it lasts).

The view's age is set by moving its last sync back, as the follower's failing reads leave it.
"""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.gate.allowlist import Allowlist
from gateway.gate.routes import ALLOWED, DENIED, GateRoutes, Request
from gateway.metrics import Metrics


def _allowlist(*, age: float, source: str = "database") -> Allowlist:
    allowlist = Allowlist()
    allowlist.apply(1, "shop.acme.com", "shop", "active", "shop.internal:80")
    allowlist.loaded = True
    allowlist.source = source
    allowlist.synced_at = time.monotonic() - age
    return allowlist


def _ask(routes: GateRoutes, name: str) -> object:
    return routes.tls_ask(Request(query=f"domain={name}".encode(), forwarded=()))


def _ready(routes: GateRoutes, query: bytes = b"") -> tuple[int, dict[str, object]]:
    answer = routes.readyz(Request(query=query, forwarded=()))
    body: dict[str, object] = json.loads(answer.body)
    return answer.status, body


async def _staleness(routes: GateRoutes, metrics: Metrics) -> float:
    await routes.metrics(Request(query=b"", forwarded=()))
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "domaingate_gate_staleness_seconds":
                return float(sample.value)
    raise AssertionError("no domaingate_gate_staleness_seconds")


async def test_a_fresh_view_is_ready_and_fresh() -> None:
    metrics = Metrics()
    routes = GateRoutes(_allowlist(age=0.2), metrics)
    assert _ready(routes)[0] == 200
    assert _ready(routes)[1]["view"] == "fresh"
    assert _ready(routes, b"fresh=1")[0] == 200
    assert 0 <= await _staleness(routes, metrics) < 5


@pytest.mark.parametrize("source", ["database", "snapshot"])
async def test_a_stale_view_stays_ready_for_caddy_and_says_it_is_stale(source: str) -> None:
    metrics = Metrics()
    age = 1.0 if source == "snapshot" else 3600.0  # a snapshot is stale however young
    routes = GateRoutes(_allowlist(age=age, source=source), metrics)
    status, body = _ready(routes)
    assert (status, body["ready"], body["view"], body["source"]) == (200, True, "stale", source)
    # A check that must see the database (a monitor, not Caddy's load balancer).
    assert _ready(routes, b"fresh=1")[0] == 503
    # Unset GATE_MAX_STALENESS: the last known list is served.
    assert _ask(routes, "shop.acme.com") is ALLOWED
    assert await _staleness(routes, metrics) >= age


def test_past_gate_max_staleness_the_gate_denies_and_is_not_ready() -> None:
    allowlist = _allowlist(age=30)
    routes = GateRoutes(allowlist, Metrics(), max_staleness=60)
    assert _ask(routes, "shop.acme.com") is ALLOWED
    assert _ready(routes)[0] == 200
    allowlist.synced_at = time.monotonic() - 61
    assert _ask(routes, "shop.acme.com") is DENIED
    status, body = _ready(routes)
    assert (status, body["ready"], body["view"]) == (503, False, "stale")
    # A fresh read mends it at once.
    allowlist.synced_at = time.monotonic()
    assert _ask(routes, "shop.acme.com") is ALLOWED


async def test_before_any_view_staleness_is_minus_one_and_not_ready() -> None:
    metrics = Metrics()
    routes = GateRoutes(Allowlist(), metrics, max_staleness=60)
    status, body = _ready(routes)
    assert (status, body["view"], body["source"]) == (503, "none", None)
    assert await _staleness(routes, metrics) == -1
