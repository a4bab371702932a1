"""The API's rate limits and the claims' cool-down: their numbers, and the one sliding-window
rule the limits share.

The store counts the requests of the window (at most `limit` of them, newest first) inside the
write transaction that records the new one; the rule here decides from that count.
"""

from __future__ import annotations

import math

# How long the removal of a proven claim keeps the name from other tenants (the claim rules,
# `domaingate.lifecycle.claims`; REMOVED_RETENTION must keep removed rows at least this long).
COOLDOWN_SECONDS = 48 * 3600

# Attaches per tenant in a sliding hour (ATTACH_RATE_LIMIT overrides the number).
ATTACH_WINDOW_SECONDS = 3600
ATTACH_LIMIT_PER_TENANT = 30

# Verify-now requests in a sliding hour: per claim (one tenant's on one name) and per tenant.
VERIFY_WINDOW_SECONDS = 3600
VERIFY_LIMIT_PER_DOMAIN = 5
VERIFY_LIMIT_PER_TENANT = 10


def retry_after(
    recent: int, oldest: float | None, *, limit: int, window: float, now: float
) -> int | None:
    """None while one more request fits: `recent` (the window's requests, counted up to `limit`)
    is under `limit`. Else the whole seconds until the oldest of those leaves the window."""
    if recent < limit:
        return None
    assert oldest is not None, "a full window has an oldest request"
    return max(1, math.ceil(oldest + window - now))
