"""Domain states and the one table of allowed moves that code and tests both read."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    ACTIVE = "active"
    EXPIRING = "expiring"
    FAILED = "failed"
    REMOVED = "removed"


# The only statuses for which the gate may answer 200.
ALLOWED = frozenset({Status.VERIFIED, Status.ACTIVE, Status.EXPIRING})
# Statuses that hold a claim on the hostname (the partial unique index mirrors this).
LIVE = frozenset(set(Status) - {Status.REMOVED})

TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.PENDING, Status.VERIFIED),
        (Status.PENDING, Status.FAILED),
        (Status.FAILED, Status.PENDING),
        (Status.FAILED, Status.VERIFIED),
        (Status.VERIFIED, Status.ACTIVE),
        (Status.ACTIVE, Status.EXPIRING),
        (Status.EXPIRING, Status.ACTIVE),
        (Status.ACTIVE, Status.VERIFIED),
        (Status.EXPIRING, Status.VERIFIED),
        (Status.VERIFIED, Status.FAILED),
        (Status.ACTIVE, Status.FAILED),
        (Status.EXPIRING, Status.FAILED),
        *((s, Status.REMOVED) for s in Status if s is not Status.REMOVED),
    }
)

# Moves into these statuses are delivered as webhooks (`domain.<status>`).
WEBHOOK_STATUSES = frozenset(
    {Status.VERIFIED, Status.ACTIVE, Status.EXPIRING, Status.FAILED, Status.REMOVED}
)


class IllegalTransition(ValueError):
    def __init__(self, source: Status, target: Status) -> None:
        super().__init__(f"a domain cannot move from {source} to {target}")
        self.source = source
        self.target = target


def can_move(source: Status, target: Status) -> bool:
    return (source, target) in TRANSITIONS


def check_move(source: Status, target: Status) -> None:
    if not can_move(source, target):
        raise IllegalTransition(source, target)


def event_type(target: Status) -> str:
    return f"domain.{target.value}"
