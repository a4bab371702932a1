"""Verify now: check a domain's DNS and apply what the check means, for the API and the CLI."""

from __future__ import annotations

from domaingate.dns.checker import DnsChecker
from domaingate.dns.findings import CheckReport
from domaingate.errors import InvalidState
from domaingate.instructions import expectation_for
from domaingate.lifecycle.claims import HOSTNAME_TAKEN
from domaingate.lifecycle.dns import CheckOutcome, Policy, plan_check
from domaingate.models import Domain
from domaingate.settings import Settings
from domaingate.store.abc import Database
from domaingate.store.checks import apply_check
from domaingate.store.domains import get_by_id
from domaingate.times import Clock


async def verify_now(
    db: Database, checker: DnsChecker, settings: Settings, domain: Domain, clock: Clock
) -> tuple[Domain, CheckReport]:
    report = await checker.check(expectation_for(domain, settings))
    now = clock()
    plan = plan_check(domain, report, now, Policy.from_settings(settings), requested=True)
    updated = await apply_check(db, CheckOutcome(domain=domain, plan=plan, now=now))
    if updated is None:
        current = await get_by_id(db, domain.id)
        if current.last_check_code == HOSTNAME_TAKEN:
            # Another tenant's claim verified meanwhile and took the name: that is the answer.
            return current, report
        raise InvalidState(
            f"{domain.hostname} changed while it was being checked; fetch it and retry"
        )
    return updated, report
