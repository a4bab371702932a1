"""The loop-kept counters and histograms export as the Prometheus samples they stand for."""

from __future__ import annotations

from gateway.metrics import BUCKETS, Metrics
from tests.conftest import sample


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    metrics = Metrics()
    series = metrics.latency("api", "/api/v1/domains")
    # On a bound counts as within it (Prometheus `le`), above the last bound only in +Inf.
    for seconds in (BUCKETS[0], BUCKETS[0] * 1.5, 0.003, BUCKETS[-1], BUCKETS[-1] + 1):
        series.observe(seconds)
    text = metrics.render().decode()
    name = "domaingate_request_duration_seconds"
    labels = {"listener": "api", "route": "/api/v1/domains"}

    def bucket(le: str) -> float:
        return sample(text, f"{name}_bucket", le=le, **labels)

    assert bucket("0.0001") == 1
    assert bucket("0.00025") == 2
    assert bucket("0.0025") == 2
    assert bucket("0.005") == 3
    assert bucket("5.0") == 4
    assert bucket("+Inf") == 5
    assert sample(text, f"{name}_count", **labels) == 5
    expected_sum = BUCKETS[0] * 2.5 + 0.003 + BUCKETS[-1] * 2 + 1
    assert abs(sample(text, f"{name}_sum", **labels) - expected_sum) < 1e-9


def test_gate_counters_export_both_results_from_zero() -> None:
    metrics = Metrics()
    metrics.ask_denied.inc()
    metrics.ask_denied.inc()
    metrics.route_allowed.inc()
    text = metrics.render().decode()
    assert sample(text, "domaingate_tls_ask_total", result="allowed") == 0
    assert sample(text, "domaingate_tls_ask_total", result="denied") == 2
    assert sample(text, "domaingate_route_total", result="allowed") == 1
    assert sample(text, "domaingate_route_total", result="denied") == 0


def test_connection_caps_export_what_they_shed_by_listener_from_zero() -> None:
    metrics = Metrics()
    api, internal = metrics.shedder("api", 10), metrics.shedder("internal", 20)
    api.refused += 2
    internal.evicted += 3
    text = metrics.render().decode()
    assert sample(text, "domaingate_connections_refused_total", listener="api") == 2
    assert sample(text, "domaingate_connections_evicted_total", listener="api") == 0
    assert sample(text, "domaingate_connections_refused_total", listener="internal") == 0
    assert sample(text, "domaingate_connections_evicted_total", listener="internal") == 3
