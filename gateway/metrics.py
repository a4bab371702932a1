"""Prometheus metrics of one gateway process, in a registry of its own (one per app, so tests
can build many apps in one process).

The gate's counters and every request-latency histogram are kept by the event loop itself as
plain numbers (`LoopCounter`, `LoopHistogram`) and turned into Prometheus samples only when
/metrics is scraped. prometheus_client's own Counter and Histogram take a threading lock on every
update: on /tls-ask, which answers in microseconds under scanner load, those locks cost several
percent of the gate's throughput. Everything here is updated from the event loop thread only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from domaingate.states import Status
from domaingate.store.errors import FAILURE_CAUSES
from gateway.caps import Shedder

# The gate answers in microseconds; the API in milliseconds. Buckets cover both.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class LoopCounter:
    """A counter the event loop increments without a lock."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class LoopHistogram:
    """One labelled series of a latency histogram, updated without a lock."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class _LoopCollector(Collector):
    """Exports the loop-kept counters and histograms at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for name, doc, allowed, denied in (
            ("domaingate_tls_ask", "Answers of /tls-ask by result", m.ask_allowed, m.ask_denied),
            ("domaingate_route", "Answers of /route by result", m.route_allowed, m.route_denied),
        ):
            family = CounterMetricFamily(name, doc, labels=["result"])
            family.add_metric(["allowed"], allowed.value)
            family.add_metric(["denied"], denied.value)
            yield family
        for action, doc in (
            ("refused", "New connections closed at once: the listener was at its cap"),
            ("evicted", "Waiting connections closed to make room for a new one at the cap"),
        ):
            family = CounterMetricFamily(
                f"domaingate_connections_{action}", doc, labels=["listener"]
            )
            for listener, shedder in sorted(m.shedders.items()):
                family.add_metric([listener], getattr(shedder, action))
            yield family
        latency = HistogramMetricFamily(
            "domaingate_request_duration_seconds",
            "Request latency by listener and route",
            labels=["listener", "route"],
        )
        for (listener, route), series in sorted(m.latencies.items()):
            latency.add_metric([listener, route], series.cumulative(), series.total)
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ask_allowed = LoopCounter()
        self.ask_denied = LoopCounter()
        self.route_allowed = LoopCounter()
        self.route_denied = LoopCounter()
        # Listener ("api", "internal") → its connection cap, which counts what it sheds.
        self.shedders: dict[str, Shedder] = {}
        # (listener, route template) → series; route templates only, never raw paths.
        self.latencies: dict[tuple[str, str], LoopHistogram] = {}
        self.ask_latency = self.latency("internal", "/tls-ask")
        self.route_latency = self.latency("internal", "/route")
        self.registry.register(_LoopCollector(self))
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
            "Failed reads of domain changes by the gate's follower",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "domaingate_store_errors",
            "API requests answered 503 STORE_UNAVAILABLE, by cause"
            " (locked, full, unreachable, other)",
            ["cause"],
            registry=self.registry,
        )
        for cause in FAILURE_CAUSES:
            self.store_errors.labels(cause)  # shown at 0 before the first failure
        self.sync_lag = Gauge(
            "domaingate_gate_sync_age_seconds",
            "Seconds since the gate last read the database successfully",
            registry=self.registry,
        )
        self.staleness = Gauge(
            "domaingate_gate_staleness_seconds",
            "Seconds since the gate's view last matched the database (from a snapshot, counted"
            " from when the snapshot's view did; -1 before any)",
            registry=self.registry,
        )

    def latency(self, listener: str, route: str) -> LoopHistogram:
        """The latency series of one listener and route template."""
        series = self.latencies.get((listener, route))
        if series is None:
            series = self.latencies[(listener, route)] = LoopHistogram()
        return series

    def shedder(self, listener: str, limit: int) -> Shedder:
        """The cap of `listener` at `limit` connections, its counts exported here."""
        shedder = self.shedders[listener] = Shedder(limit)
        return shedder

    def set_domain_counts(self, counts: dict[str, int]) -> None:
        for status in Status:
            self.domains.labels(status.value).set(counts.get(status.value, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
