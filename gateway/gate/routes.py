"""The internal listener's routes: the TLS gate, forward_auth routing, health and metrics.

`/tls-ask` and `/route` read only the in-memory allowlist. Their only path to 200 is an explicit
allow; anything unexpected denies (fail closed). Nothing here knows HTTP framing (that is
`gateway.gate.listener`'s) and nothing here imports the store or DNS: the request path reads
memory only. What a route needs from the rest of the gateway it is handed as a value.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

from domaingate.hostnames import gate_key
from gateway.gate.replies import Reply, json_reply, reply, text_reply

log = logging.getLogger(__name__)

# The gate's view is fresh while it has read the database this recently (its reads come every
# 0.1-1 s): older, the database is lost to it, and /readyz says `stale`.
MAX_SYNC_AGE = 5.0
_PORT = re.compile(r":[0-9]{1,5}$")
# What may go into a response header unquoted: visible ASCII and the space.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ALLOWED = text_reply(200, b"allowed\n")
DENIED = text_reply(403, b"denied\n")
UNKNOWN_HOST = text_reply(404, b"unknown host\n")


class AllowlistView(Protocol):
    """What the routes read of `gateway.gate.allowlist.Allowlist`."""

    loaded: bool
    synced_at: float
    source: str

    def __len__(self) -> int: ...
    def __contains__(self, hostname: object) -> bool: ...
    def route_for(self, hostname: str) -> tuple[str, str] | None: ...


class Count(Protocol):
    def inc(self) -> None: ...


class Observe(Protocol):
    def observe(self, seconds: float) -> None: ...


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class GateMetrics(Protocol):
    """What the routes update of `gateway.metrics.Metrics`."""

    @property
    def ask_allowed(self) -> Count: ...
    @property
    def ask_denied(self) -> Count: ...
    @property
    def route_allowed(self) -> Count: ...
    @property
    def route_denied(self) -> Count: ...
    @property
    def ask_latency(self) -> Observe: ...
    @property
    def route_latency(self) -> Observe: ...
    @property
    def allowlist_size(self) -> Gauge: ...
    @property
    def sync_lag(self) -> Gauge: ...
    @property
    def staleness(self) -> Gauge: ...
    def set_domain_counts(self, counts: dict[str, int]) -> None: ...
    def render(self) -> bytes: ...


DomainCounts = Callable[[], Awaitable[Mapping[str, int]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request as the routes see it: the raw query and every X-Forwarded-Host value."""

    query: bytes
    forwarded: tuple[bytes, ...]


Handler = Callable[[Request], Reply | Awaitable[Reply]]


def ask_values(query: bytes) -> list[str]:
    """Every `domain` value of a raw query string, decoded once, as aiohttp read it."""
    if not query.isascii():
        # Caddy percent-encodes; raw bytes past ASCII are no name it would send.
        return []
    text = query.decode("ascii")
    # The common case, exactly what Caddy sends for a hostname: nothing to decode.
    if text.startswith("domain=") and not any(c in text for c in "&%+"):
        return [text[7:]]
    return _query_values(query, "domain")


def _query_values(query: bytes, name: str) -> list[str]:
    """Every `name` value of a raw query string (none from one that is not ASCII)."""
    if not query.isascii():
        return []
    pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, errors="replace")
    return [value for key, value in pairs if key == name]


def _strip_port(host: str) -> str:
    # Caddy sends the client's Host with its port; IPv6 literals never reach an allowed name.
    return _PORT.sub("", host, count=1) if not host.endswith("]") else host


class GateRoutes:
    """`/tls-ask`, `/route`, `/healthz`, `/readyz` and `/metrics`, bound once to what they read.

    Bound methods rather than lookups per request: on the handshake path every attribute and key
    lookup is a measurable share of the answer's cost.
    """

    def __init__(
        self,
        allowlist: AllowlistView,
        metrics: GateMetrics,
        domain_counts: DomainCounts | None = None,
        *,
        max_staleness: float | None = None,
    ) -> None:
        self._allowlist = allowlist
        self._metrics = metrics
        self._domain_counts = domain_counts
        self._max_staleness = max_staleness
        self._routed: dict[tuple[str, str], Reply] = {}

    def table(self) -> dict[bytes, Handler]:
        return {
            b"/tls-ask": self.tls_ask,
            b"/route": self.route,
            b"/healthz": self.healthz,
            b"/readyz": self.readyz,
            b"/metrics": self.metrics,
        }

    def refusals(self) -> dict[bytes, Callable[[], Reply]]:
        """The answer of each gate route to a request too malformed to read: its denial."""
        return {b"/tls-ask": self.refuse_ask, b"/route": self.refuse_route}

    def tls_ask(self, request: Request) -> Reply:
        started = time.perf_counter()
        allowlist, metrics = self._allowlist, self._metrics
        allowed = False
        try:
            values = ask_values(request.query)
            # Exactly one name: with several, which one Caddy meant is unknowable.
            if len(values) == 1 and allowlist.loaded:
                key = gate_key(values[0])
                # GATE_MAX_STALENESS read only for a name held: a flood of unknown names
                # costs no clock.
                allowed = key is not None and key in allowlist and self._fresh_enough()
        except Exception:
            log.exception("tls-ask failed; denying")
        if allowed:
            metrics.ask_allowed.inc()
            answer = ALLOWED
        else:
            metrics.ask_denied.inc()
            answer = DENIED
        metrics.ask_latency.observe(time.perf_counter() - started)
        return answer

    def _fresh_enough(self) -> bool:
        """GATE_MAX_STALENESS: nothing not seen fresh within it is allowed or routed."""
        limit = self._max_staleness
        return limit is None or time.monotonic() - self._allowlist.synced_at <= limit

    def refuse_ask(self) -> Reply:
        self._metrics.ask_denied.inc()
        return DENIED

    def route(self, request: Request) -> Reply:
        started = time.perf_counter()
        allowlist, metrics = self._allowlist, self._metrics
        answer = UNKNOWN_HOST
        try:
            forwarded = request.forwarded
            if len(forwarded) == 1 and allowlist.loaded:
                # Header bytes as they came: anything past ASCII is refused by gate_key.
                host = forwarded[0].strip(b" \t").decode("latin-1")
                key = gate_key(_strip_port(host))
                found = allowlist.route_for(key) if key is not None else None
                # Past GATE_MAX_STALENESS too: a certificate Caddy holds in memory is served
                # without asking /tls-ask, and this refusal is what stops its requests.
                if found is not None and self._fresh_enough():
                    answer = self._routed.get(found) or self._route_reply(*found)
        except Exception:
            log.exception("route failed; refusing")
        if answer is UNKNOWN_HOST:
            metrics.route_denied.inc()
        else:
            metrics.route_allowed.inc()
        metrics.route_latency.observe(time.perf_counter() - started)
        return answer

    def refuse_route(self) -> Reply:
        self._metrics.route_denied.inc()
        return UNKNOWN_HOST

    def _route_reply(self, app: str, upstream: str) -> Reply:
        if not (_HEADER_SAFE.fullmatch(app) and _HEADER_SAFE.fullmatch(upstream)):
            # Never a header a client could split; the API admits no such app name anyway.
            log.error("app %r has no header-safe name or upstream; refusing", app)
            return UNKNOWN_HOST
        built = reply(200, [("X-Domaingate-App", app), ("X-Domaingate-Upstream", upstream)])
        if len(self._routed) < 10_000:  # apps are few; never a cache a database can grow
            self._routed[app, upstream] = built
        return built

    def healthz(self, request: Request) -> Reply:
        return json_reply(200, {"status": "ok"})

    def _sync_age(self) -> float:
        allowlist = self._allowlist
        return time.monotonic() - allowlist.synced_at if allowlist.loaded else float("inf")

    def readyz(self, request: Request) -> Reply:
        """200 while the gate answers Caddy from a loaded view, fresh or stale (a database
        outage reaches every edge at once: taking them all out of a load balancer would fail
        every handshake); 503 before it has loaded, or past GATE_MAX_STALENESS, when it denies.
        `view` tells a stale gate (`stale`: the database lost) from a fresh one, and
        `?fresh=1` answers 503 for a stale one too, for a check that must see the database."""
        allowlist = self._allowlist
        age = self._sync_age()
        # A snapshot is stale however young: the database has not confirmed it.
        fresh = allowlist.loaded and allowlist.source == "database" and age <= MAX_SYNC_AGE
        limit = self._max_staleness
        ready = allowlist.loaded and (limit is None or age <= limit)
        body = {
            "ready": ready,
            "view": "fresh" if fresh else "stale" if allowlist.loaded else "none",
            "source": allowlist.source if allowlist.loaded else None,
            "allowed_hostnames": len(allowlist),
            "sync_age_seconds": round(age, 3) if age != float("inf") else None,
        }
        wants_fresh = any(v not in ("", "0") for v in _query_values(request.query, "fresh"))
        return json_reply(200 if ready and (fresh or not wants_fresh) else 503, body)

    async def metrics(self, request: Request) -> Reply:
        registry = self._metrics
        registry.allowlist_size.set(len(self._allowlist))
        age = self._sync_age()
        registry.sync_lag.set(age if age != float("inf") else -1)
        registry.staleness.set(age if age != float("inf") else -1)
        if self._domain_counts is not None:
            try:
                registry.set_domain_counts(dict(await self._domain_counts()))
            except Exception:
                # Counts are a convenience; the gate's own figures must still be scrapeable.
                log.exception("could not count domains for /metrics")
        return reply(200, [("Content-Type", METRICS_CONTENT_TYPE)], registry.render())
