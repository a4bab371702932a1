"""The claim rules: who may attach a name, who wins the race to verify it, and for how long a
removed claim keeps it from others. Pure decisions over the facts the store reads
(`domaingate.store.holders`), tested without I/O.

Several tenants may claim one name; only a proven claim (verified, active, expiring) holds it.
The first claim to verify takes the name, and the other tenants' claims turn failed with
`hostname_taken`. The removal of a proven claim keeps the name from other tenants for the
cool-down; an unproven claim leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from domaingate.errors import DomaingateError, HostnameAlreadyRegistered, HostnameCooldownActive
from domaingate.lifecycle.dns import CheckOutcome, CheckPlan
from domaingate.lifecycle.limits import COOLDOWN_SECONDS
from domaingate.lifecycle.moves import Move
from domaingate.models import Domain
from domaingate.states import Status

# Why a claim could not be verified although its DNS was right (`last_check_error.code`, and the
# reason of its move to failed).
HOSTNAME_TAKEN = "hostname_taken"
HOSTNAME_COOLDOWN = "hostname_cooldown"


@dataclasses.dataclass(slots=True)
class Holders:
    """Who holds one hostname, or held it: its proven claims, live and removed."""

    held: list[int] = dataclasses.field(default_factory=list)  # ids of its held claims
    removed: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (tenant, at)

    def held_by_another(self, domain_id: int) -> bool:
        return any(held != domain_id for held in self.held)

    def cooldown_ends(self, tenant_id: int) -> float | None:
        """When the cool-down of another tenant's latest removed proven claim ends: the one
        place the cool-down is decided. A removal without a time starts none."""
        ends = [at for tenant, at in self.removed if tenant != tenant_id]
        return max(ends) + COOLDOWN_SECONDS if ends else None


def attach_refusal(
    hostname: str, holders: Holders, *, own_claim: bool, tenant_id: int, now: float
) -> DomaingateError | None:
    """Why `tenant_id` may not attach `hostname` now (None: it may). `own_claim`: the tenant
    already has a live claim on it."""
    if holders.held or own_claim:
        return HostnameAlreadyRegistered(hostname)
    free_at = holders.cooldown_ends(tenant_id)
    if free_at is not None and now < free_at:
        return HostnameCooldownActive(hostname, retry_after=max(1, math.ceil(free_at - now)))
    return None


def verifies(plan: CheckPlan) -> bool:
    """Whether `plan` moves its domain to verified."""
    return plan.move is not None and plan.move.target is Status.VERIFIED


def settle(
    outcomes: Sequence[CheckOutcome], written: Sequence[bool], holders: dict[str, Holders]
) -> list[CheckOutcome]:
    """`outcomes` with every verification that may not happen replaced: a name already held by
    another claim (in `holders`, or by an earlier outcome of this batch) fails the claim with
    `hostname_taken`; a name in another tenant's cool-down leaves it as it is, saying so.
    `written`: whether each outcome will be written at all (its domain unchanged)."""
    taken: set[str] = set()
    settled: list[CheckOutcome] = []
    for outcome, ok in zip(outcomes, written, strict=True):
        plan, domain = outcome.plan, outcome.domain
        if not ok or not verifies(plan):
            settled.append(outcome)
            continue
        holder = holders.get(domain.hostname, Holders())
        if domain.hostname in taken or holder.held_by_another(domain.id):
            settled.append(dataclasses.replace(outcome, plan=_taken_plan(domain, plan)))
            continue
        free_at = holder.cooldown_ends(domain.tenant_id)
        if free_at is not None and outcome.now < free_at:
            settled.append(
                dataclasses.replace(outcome, plan=_cooldown_plan(plan, free_at, outcome.now))
            )
            continue
        taken.add(domain.hostname)
        settled.append(outcome)
    return settled


def taken_message(hostname: str) -> str:
    return (
        f"{hostname} has been verified by another tenant, who now holds it; this claim can "
        "no longer be verified"
    )


def _taken_plan(domain: Domain, plan: CheckPlan) -> CheckPlan:
    message = taken_message(domain.hostname)
    # A pending claim fails; a failed one stays failed, saying why.
    move = (
        Move(source=domain.status, target=Status.FAILED, reason=HOSTNAME_TAKEN, message=message)
        if domain.status is Status.PENDING
        else None
    )
    return dataclasses.replace(
        plan,
        move=move,
        last_check_code=HOSTNAME_TAKEN,
        last_check_message=message,
    )


def _cooldown_plan(plan: CheckPlan, free_at: float, now: float) -> CheckPlan:
    wait = max(1, math.ceil(free_at - now))
    return dataclasses.replace(
        plan,
        move=None,
        last_check_code=HOSTNAME_COOLDOWN,
        last_check_message=(
            f"another tenant's verified claim on this name was removed recently; it can be "
            f"verified for this tenant in {wait} s"
        ),
        next_check_at=free_at,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RivalLoss:
    """What a winner's verification does to one rival claim (another tenant's pending or
    failed claim on the name): it says why, and a pending one moves to failed."""

    rival: Domain
    message: str
    now: float
    next_check_at: float
    move: Move | None


def rival_losses(winner: CheckOutcome, rivals: Sequence[Domain]) -> list[RivalLoss]:
    """The losses of `rivals` (pending and failed claims on the winner's name) to `winner`."""
    message = taken_message(winner.domain.hostname)
    return [
        RivalLoss(
            rival=rival,
            message=message,
            now=winner.now,
            next_check_at=winner.plan.next_check_at,
            move=Move(
                source=rival.status, target=Status.FAILED, reason=HOSTNAME_TAKEN, message=message
            )
            if rival.status is Status.PENDING
            else None,
        )
        for rival in rivals
        if rival.id != winner.domain.id
    ]
