"""The status sets of `domaingate.states`, rendered as the store's SQL writes them, so that a
query's `IN (…)` and the rule in Python are one source. (The schema's own CHECK and partial
index, written once in `sql/`, are tied to `states` by a test.)"""

from __future__ import annotations

from collections.abc import Iterable

from domaingate.states import ALLOWED, Status


def sql_set(statuses: Iterable[Status]) -> str:
    """`('a', 'b')`: statuses as an SQL list, in their declared order. Literal values from the
    enum, never from input."""
    chosen = set(statuses)
    return "(" + ", ".join(f"'{status.value}'" for status in Status if status in chosen) + ")"


# Claims that hold their name (verified, active, expiring): what the gate allows.
HELD = sql_set(ALLOWED)
# Claims whose certificate is known (active, expiring).
CERTIFIED = sql_set({Status.ACTIVE, Status.EXPIRING})
# Claims not proven yet, or no longer (pending, failed): rivals that lose to a verification.
UNPROVEN = sql_set({Status.PENDING, Status.FAILED})

# How many domains each status has, as the metrics count them (on whichever connection): from
# the counts 009's triggers keep, never a count of the whole table; a status none has is left out.
COUNT_BY_STATUS = (
    "SELECT status, sum(n) FROM domain_counts GROUP BY status HAVING sum(n) > 0 ORDER BY status"
)
