"""Prometheus metrics of one gateway process, in a registry of its own (one per app, so tests
can build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.states import Status

# The gate answers in microseconds; the API in milliseconds. Buckets cover both.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ask = Counter(
            "domaingate_tls_ask",
            "Answers of /tls-ask by result",
            ["result"],
            registry=self.registry,
        )
        # Children bound once: the gate's request path does no label lookups.
        self.ask_allowed = ask.labels("allowed")
        self.ask_denied = ask.labels("denied")
        route = Counter(
            "domaingate_route", "Answers of /route by result", ["result"], registry=self.registry
        )
        self.route_allowed = route.labels("allowed")
        self.route_denied = route.labels("denied")
        self.latency = Histogram(
            "domaingate_request_duration_seconds",
            "Request latency by listener and route",
            ["listener", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # The gate's routes observe their own latency (no middleware on the internal listener).
        self.ask_latency = self.latency.labels("internal", "/tls-ask")
        self.route_latency = self.latency.labels("internal", "/route")
        self.domains = Gauge(
            "domaingate_domains", "Domains by status", ["status"], registry=self.registry
        )
        self.allowlist_size = Gauge(
            "domaingate_gate_allowed_hostnames",
            "Hostnames the gate allows, in memory",
            registry=self.registry,
        )
        self.sync_errors = Counter(
            "domaingate_gate_sync_errors",
            "Failed reads of domain changes by the gate's watcher",
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "domaingate_gate_sync_age_seconds",
            "Seconds since the gate last read the database successfully",
            registry=self.registry,
        )

    def set_domain_counts(self, counts: dict[str, int]) -> None:
        for status in Status:
            self.domains.labels(status.value).set(counts.get(status.value, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
