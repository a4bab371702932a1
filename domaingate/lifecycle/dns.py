"""The DNS half of the lifecycle: what a check result means for a domain, as a pure plan that the
store applies elsewhere in one transaction.

Both the API's "verify now" and the reconciler's scheduled checks call `plan_check`, so a domain
moves by the same rules whoever looked at its DNS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from domaingate.dns.findings import CheckReport, Code
from domaingate.lifecycle.moves import Move
from domaingate.models import Domain
from domaingate.states import ALLOWED, Status

if TYPE_CHECKING:
    # Only a type here: the settings take their defaults from the lifecycle's rules.
    from domaingate.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The schedule: every interval and budget in seconds."""

    fast_interval: float = 60
    fast_window: float = 900
    slow_interval: float = 300
    retry_budget: float = 259200
    drift_interval: float = 3600
    drift_grace: float = 259200

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            fast_interval=settings.pending_fast_interval,
            fast_window=settings.pending_fast_window,
            slow_interval=settings.pending_slow_interval,
            retry_budget=settings.retry_budget,
            drift_interval=settings.drift_interval,
            drift_grace=settings.drift_grace,
        )

    def pending_interval(self, pending_for: float) -> float:
        return self.fast_interval if pending_for < self.fast_window else self.slow_interval


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckPlan:
    """The new check fields of a domain, and the move to make (if any)."""

    move: Move | None
    last_check_code: str | None
    last_check_message: str | None
    failure_count: int
    failing_since: float | None
    next_check_at: float
    dns_provider: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """A check of `domain` (as it was read before the check) and the plan made of it at `now`."""

    domain: Domain
    plan: CheckPlan
    now: float

    def __post_init__(self) -> None:
        move = self.plan.move
        if move is not None and move.source is not self.domain.status:
            raise ValueError(
                f"the plan moves from {move.source}, the domain is {self.domain.status}"
            )

    @property
    def moves(self) -> tuple[Move, ...]:
        return () if self.plan.move is None else (self.plan.move,)


def plan_check(
    domain: Domain, report: CheckReport, now: float, policy: Policy, *, requested: bool = False
) -> CheckPlan:
    """Turn one check of `domain` into a plan. `requested`: a tenant or operator asked for it."""
    status = domain.status
    error = report.error
    code = error.code.value if error and error.code else None
    message = error.message if error else None
    provider = report.provider or domain.dns_provider

    def plan(
        target: Status | None,
        *,
        next_at: float,
        failures: int,
        since: float | None,
        reason: str | None = None,
        note: str | None = None,
        last_code: str | None = code,
        last_message: str | None = message,
    ) -> CheckPlan:
        move = None
        if target is not None:
            move = Move(source=status, target=target, reason=reason, message=note)
        return CheckPlan(
            move=move,
            last_check_code=last_code,
            last_check_message=last_message,
            failure_count=failures,
            failing_since=since,
            next_check_at=next_at,
            dns_provider=provider,
        )

    if report.ok:
        if status in ALLOWED:
            return plan(None, next_at=now + policy.drift_interval, failures=0, since=None)
        return plan(
            Status.VERIFIED,
            next_at=now + policy.drift_interval,
            failures=0,
            since=None,
            note="DNS proves ownership and routing",
        )

    failures = domain.failure_count + 1
    if status is Status.PENDING:
        since = domain.failing_since if domain.failing_since is not None else domain.created_at
        deadline = since + policy.retry_budget
        if now >= deadline:
            return plan(
                Status.FAILED,
                next_at=now + policy.drift_interval,
                failures=failures,
                since=since,
                reason=code,
                note=f"DNS was not right within the retry budget: {message}",
            )
        next_at = min(now + policy.pending_interval(now - since), deadline)
        return plan(None, next_at=next_at, failures=failures, since=since)

    if status is Status.FAILED:
        if requested:
            # Asking again restarts the retry budget from now.
            return plan(
                Status.PENDING,
                next_at=now + policy.fast_interval,
                failures=1,
                since=now,
                reason=code,
                note="verification requested again",
            )
        return plan(None, next_at=now + policy.drift_interval, failures=failures, since=None)

    # A live domain (verified, active, expiring): DNS may have drifted away.
    if report.transient:
        # A resolver hiccup proves nothing: keep the domain, keep the drift clock as it was.
        return plan(
            None,
            next_at=now + min(policy.drift_interval, policy.slow_interval),
            failures=domain.failure_count,
            since=domain.failing_since,
        )
    since = domain.failing_since if domain.failing_since is not None else now
    deadline = since + policy.drift_grace
    if now >= deadline:
        moved = f"DNS has pointed away from the platform since the grace time began: {message}"
        return plan(
            Status.FAILED,
            next_at=now + policy.drift_interval,
            failures=failures,
            since=since,
            reason=Code.DNS_MOVED.value,
            note=moved,
            last_code=Code.DNS_MOVED.value,
            last_message=moved,
        )
    return plan(
        None, next_at=min(now + policy.drift_interval, deadline), failures=failures, since=since
    )
