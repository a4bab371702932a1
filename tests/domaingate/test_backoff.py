"""The reconnect back-off's shape: doubling from 0.5 s, bounded at 30 s, full jitter below it."""

from __future__ import annotations

import pytest

from domaingate import backoff


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff.ceiling(attempt) for attempt in range(9)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_long_outage_stays_at_the_cap() -> None:
    assert backoff.ceiling(10_000) == backoff.CAP
    assert backoff.ceiling(-1) == backoff.BASE  # never below the first retry's


def test_each_wait_is_drawn_uniformly_below_the_ceiling() -> None:
    for attempt in range(12):
        top = backoff.ceiling(attempt)
        assert backoff.delay(attempt, uniform=lambda: 0.0) == 0.0
        assert backoff.delay(attempt, uniform=lambda: 0.5) == top / 2
        assert backoff.delay(attempt, uniform=lambda: 0.999) < top


def test_retries_of_many_processes_spread_out() -> None:
    # The real draw: a fleet retrying at attempt 6 is spread over the whole 0-30 s window.
    waits = [backoff.delay(6) for _ in range(2000)]
    assert 0 <= min(waits) < 3 and 27 < max(waits) < 30


def test_a_base_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError):
        backoff.ceiling(0, base=5, cap=1)
