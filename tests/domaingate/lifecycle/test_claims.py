"""The claim rules as pure decisions: who may attach, who wins a batch of verifications, the
cool-down, and what a winner does to its rivals. No database: the facts are built by hand."""

from __future__ import annotations

import pytest

from domaingate.errors import HostnameAlreadyRegistered, HostnameCooldownActive
from domaingate.lifecycle.claims import (
    HOSTNAME_COOLDOWN,
    HOSTNAME_TAKEN,
    Holders,
    attach_refusal,
    rival_losses,
    settle,
)
from domaingate.lifecycle.dns import CheckOutcome, CheckPlan
from domaingate.lifecycle.limits import COOLDOWN_SECONDS
from domaingate.lifecycle.moves import Move
from domaingate.models import Domain
from domaingate.states import Status
from tests.support.domains import make_domain

NOW = 1_000_000.0
NAME = "shop.acme.test"


def verifying(domain: Domain, *, now: float = NOW) -> CheckOutcome:
    plan = CheckPlan(
        move=Move(source=domain.status, target=Status.VERIFIED, reason=None, message=None),
        last_check_code=None,
        last_check_message=None,
        failure_count=0,
        failing_since=None,
        next_check_at=now + 3600,
        dns_provider=None,
    )
    return CheckOutcome(domain=domain, plan=plan, now=now)


def test_a_free_name_may_be_attached() -> None:
    assert attach_refusal(NAME, Holders(), own_claim=False, tenant_id=1, now=NOW) is None


def test_a_held_name_or_the_tenants_own_claim_refuses_an_attach() -> None:
    held = attach_refusal(NAME, Holders(held=[7]), own_claim=False, tenant_id=1, now=NOW)
    own = attach_refusal(NAME, Holders(), own_claim=True, tenant_id=1, now=NOW)
    assert isinstance(held, HostnameAlreadyRegistered)
    assert isinstance(own, HostnameAlreadyRegistered)


def test_the_cool_down_follows_another_tenants_latest_proven_removal() -> None:
    holders = Holders(removed=[(2, NOW - 100), (2, NOW - 10), (1, NOW - 1)])
    # The tenant's own removal never holds it back; the other tenant's latest one does.
    assert holders.cooldown_ends(1) == NOW - 10 + COOLDOWN_SECONDS
    assert holders.cooldown_ends(2) == NOW - 1 + COOLDOWN_SECONDS
    refusal = attach_refusal(NAME, holders, own_claim=False, tenant_id=1, now=NOW)
    assert isinstance(refusal, HostnameCooldownActive)
    assert refusal.retry_after == COOLDOWN_SECONDS - 10
    later = NOW - 10 + COOLDOWN_SECONDS
    assert attach_refusal(NAME, holders, own_claim=False, tenant_id=1, now=later) is None


def test_the_first_verification_of_a_batch_wins_and_the_second_is_taken() -> None:
    first = make_domain(now=NOW, id=1, tenant_id=1)
    second = make_domain(now=NOW, id=2, tenant_id=2, tenant="other")
    settled = settle([verifying(first), verifying(second)], [True, True], {})
    assert settled[0].plan.move is not None
    assert settled[0].plan.move.target is Status.VERIFIED
    taken = settled[1].plan
    assert taken.move == Move(
        source=Status.PENDING,
        target=Status.FAILED,
        reason=HOSTNAME_TAKEN,
        message=taken.last_check_message,
    )
    assert taken.last_check_code == HOSTNAME_TAKEN


def test_a_name_held_by_another_claim_fails_a_pending_claim_and_keeps_a_failed_one() -> None:
    pending = make_domain(now=NOW, id=1)
    failed = make_domain(now=NOW, id=2, hostname="b.acme.test", status=Status.FAILED)
    holders = {NAME: Holders(held=[9]), "b.acme.test": Holders(held=[9])}
    settled = settle([verifying(pending), verifying(failed)], [True, True], holders)
    assert settled[0].plan.move is not None
    assert settled[0].plan.move.target is Status.FAILED
    # A failed claim stays failed, saying why.
    assert settled[1].plan.move is None
    assert settled[1].plan.last_check_code == HOSTNAME_TAKEN


def test_a_cool_down_holds_a_verification_back_until_it_ends() -> None:
    domain = make_domain(now=NOW, id=1, tenant_id=1)
    removed_at = NOW - 60
    settled = settle([verifying(domain)], [True], {NAME: Holders(removed=[(2, removed_at)])})
    plan = settled[0].plan
    assert plan.move is None
    assert plan.last_check_code == HOSTNAME_COOLDOWN
    assert plan.next_check_at == removed_at + COOLDOWN_SECONDS


def test_outcomes_not_written_or_not_verifying_are_left_alone() -> None:
    stale = verifying(make_domain(now=NOW, id=1))
    other = verifying(make_domain(now=NOW, id=2, tenant_id=2))
    # The stale outcome will not be written, so it does not take the name from the second.
    settled = settle([stale, other], [False, True], {})
    assert settled == [stale, other]


def test_the_claims_own_proven_row_does_not_hold_it_back() -> None:
    domain = make_domain(now=NOW, id=5)
    assert settle([verifying(domain)], [True], {NAME: Holders(held=[5])}) == [verifying(domain)]


@pytest.mark.parametrize(("status", "moves"), [(Status.PENDING, True), (Status.FAILED, False)])
def test_a_winner_fails_its_pending_rivals_and_tells_its_failed_ones(
    status: Status, moves: bool
) -> None:
    winner = verifying(make_domain(now=NOW, id=1))
    rival = make_domain(now=NOW, id=2, tenant_id=2, status=status)
    [loss] = rival_losses(winner, [winner.domain, rival])
    assert loss.rival == rival
    assert loss.next_check_at == winner.plan.next_check_at
    assert (loss.move is not None) is moves
    if loss.move is not None:
        assert (loss.move.source, loss.move.target) == (Status.PENDING, Status.FAILED)
        assert loss.move.reason == HOSTNAME_TAKEN
