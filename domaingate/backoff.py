"""How long to wait before the next attempt to reach the database again: a bounded back-off with
full jitter, the same rule for every process that retries on its own.

Every edge loses a shared PostgreSQL at the same moment, so a fixed retry delay makes them all
come back at the same moment too, twice a second each for as long as the outage lasts. The delay
doubles from `base` up to `cap` and each wait is drawn uniformly below it ("full jitter"), so the
fleet's retries spread out and thin as the outage goes on; a success starts again at attempt 0.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BASE = 0.5
CAP = 30.0


def ceiling(attempt: int, *, base: float = BASE, cap: float = CAP) -> float:
    """The longest wait before retry `attempt` (0 for the first retry after a success)."""
    if not 0 < base <= cap:
        raise ValueError("back-off needs 0 < base <= cap")
    # Bounded before it is computed: 2 ** attempt of a long outage would overflow a float.
    return min(cap, base * 2.0 ** min(max(attempt, 0), 64))


def delay(
    attempt: int,
    *,
    base: float = BASE,
    cap: float = CAP,
    uniform: Callable[[], float] = random.random,
) -> float:
    """The wait before retry `attempt`: uniform in [0, ceiling(attempt)). `uniform` is the
    source of [0, 1) draws (tests pass their own)."""
    return ceiling(attempt, base=base, cap=cap) * uniform()
