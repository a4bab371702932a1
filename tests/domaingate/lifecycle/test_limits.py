"""The sliding-window rule every rate limit of the API shares."""

from __future__ import annotations

from domaingate.lifecycle.limits import retry_after


def test_under_the_limit_a_request_fits() -> None:
    assert retry_after(0, None, limit=5, window=3600, now=100) is None
    assert retry_after(4, 10.0, limit=5, window=3600, now=100) is None


def test_at_the_limit_the_wait_is_until_the_oldest_leaves_the_window() -> None:
    assert retry_after(5, 10.0, limit=5, window=3600, now=100) == 3510
    # Whole seconds, rounded up, and never less than one.
    assert retry_after(5, 10.5, limit=5, window=3600, now=100) == 3511
    assert retry_after(5, 10.0, limit=5, window=3600, now=3609.99) == 1
