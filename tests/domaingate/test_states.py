"""The state table is exactly the spec's list of moves."""

from __future__ import annotations

import itertools

import pytest

from domaingate.states import (
    ALLOWED,
    LIVE,
    TRANSITIONS,
    IllegalTransition,
    Status,
    can_move,
    check_move,
    event_type,
)

P, V, A, E, F, R = (
    Status.PENDING,
    Status.VERIFIED,
    Status.ACTIVE,
    Status.EXPIRING,
    Status.FAILED,
    Status.REMOVED,
)

# Written out from the spec, line by line:
SPEC_MOVES = {
    (P, V),
    (P, F),  # pending → verified | failed
    (F, P),
    (F, V),  # failed → pending (tenant asks to verify again) | verified
    (V, A),  # verified → active
    (A, E),
    (E, A),  # active ↔ expiring
    (A, V),
    (E, V),  # active/expiring → verified (certificate gone from storage)
    (V, F),
    (A, F),
    (E, F),  # verified/active/expiring → failed (dns_moved past the grace time)
    (P, R),
    (V, R),
    (A, R),
    (E, R),
    (F, R),  # any → removed
}


def test_transitions_are_exactly_the_spec_moves() -> None:
    assert set(TRANSITIONS) == SPEC_MOVES


def test_the_status_names_are_the_specs() -> None:
    assert [s.value for s in Status] == [
        "pending",
        "verified",
        "active",
        "expiring",
        "failed",
        "removed",
    ]


def test_only_verified_active_and_expiring_are_allowed_at_the_gate() -> None:
    assert frozenset({V, A, E}) == ALLOWED
    assert frozenset({P, V, A, E, F}) == LIVE


def test_removed_is_final() -> None:
    assert not any(source is R for source, _ in TRANSITIONS)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Status, Status)))
def test_check_move_agrees_with_the_table(source: Status, target: Status) -> None:
    allowed = (source, target) in SPEC_MOVES
    assert can_move(source, target) is allowed
    if allowed:
        check_move(source, target)
    else:
        with pytest.raises(IllegalTransition):
            check_move(source, target)


def test_event_types() -> None:
    assert {event_type(s) for s in Status if s is not P} == {
        "domain.verified",
        "domain.active",
        "domain.expiring",
        "domain.failed",
        "domain.removed",
    }
