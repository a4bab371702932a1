"""Both planners over tables of cases: every move of the state table but removal comes from one.

`domaingate.lifecycle.plan_certs` (certificates) and `domaingate.lifecycle.plan_check` (DNS) are
pure, so they are tested here without I/O; the last test checks that the two tables together
produce every move in `domaingate.states.TRANSITIONS` except `→ removed`, which only the API makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from domaingate.dns.findings import CheckReport, Code, Finding
from domaingate.lifecycle.certificates import (
    MASS_LOSS_MIN,
    CertChange,
    certified,
    mass_loss,
    plan_certs,
)
from domaingate.lifecycle.dns import Policy, plan_check
from domaingate.lifecycle.moves import Move
from domaingate.lifecycle.renewal import CertFact
from domaingate.models import Domain
from domaingate.states import TRANSITIONS, IllegalTransition, Status
from tests.conftest import T0
from tests.support.domains import make_domain

NOW = T0
DAY = 86400.0
# The table below runs with the EXPIRING_DAYS override; tests/domaingate/test_renewal.py covers
# the certificates' own renewal windows.
EXPIRING_DAYS = 14.0


def domain(status: Status, **fields: Any) -> Domain:
    return make_domain(now=NOW - 100, **{"status": status, "next_check_at": NOW, **fields})


def cert(ends_in_days: float, *, began_days_ago: float = 30, issuer: str = "R11") -> CertFact:
    return CertFact(
        name="shop.acme.test",
        not_before=NOW - began_days_ago * DAY,
        not_after=NOW + ends_in_days * DAY,
        issuer=issuer,
        issuer_key="acme-v02.api.letsencrypt.org-directory",
        path=Path("/storage/x.crt"),
    )


@dataclass(frozen=True)
class CertCase:
    id: str
    status: Status
    cert: CertFact | None
    moves: tuple[Status, ...]  # the targets, in order
    writes: bool = True  # whether a change is planned at all
    # The certificate fields in the store before: expires_at, issuer, renewal_due_at.
    stored: tuple[float | None, str | None, float | None] = (None, None, None)


LONG = cert(60)
CERT_CASES = [
    CertCase("verified+valid→active", Status.VERIFIED, LONG, (Status.ACTIVE,)),
    CertCase(
        "verified+ending→active→expiring",
        Status.VERIFIED,
        cert(5),
        (Status.ACTIVE, Status.EXPIRING),
    ),
    CertCase("verified+expired stays", Status.VERIFIED, cert(-1), ()),
    CertCase("verified+not yet valid stays", Status.VERIFIED, cert(60, began_days_ago=-1), ()),
    CertCase("verified+none stays", Status.VERIFIED, None, (), writes=False),
    CertCase("active+ending→expiring", Status.ACTIVE, cert(13.9), (Status.EXPIRING,)),
    CertCase("active+expired→expiring", Status.ACTIVE, cert(-2), (Status.EXPIRING,)),
    CertCase(
        "active+gone→verified",
        Status.ACTIVE,
        None,
        (Status.VERIFIED,),
        stored=(NOW, "R11", NOW - EXPIRING_DAYS * DAY),
    ),
    CertCase(
        "active+unchanged",
        Status.ACTIVE,
        LONG,
        (),
        writes=False,
        stored=(LONG.not_after, "R11", LONG.not_after - EXPIRING_DAYS * DAY),
    ),
    CertCase("active+new cert fields only", Status.ACTIVE, LONG, (), stored=(NOW, "R10", NOW)),
    CertCase(
        "active+renewal due moved: fields only",
        Status.ACTIVE,
        LONG,
        (),
        stored=(LONG.not_after, "R11", LONG.not_after - 15 * DAY),
    ),
    CertCase("expiring+renewed→active", Status.EXPIRING, cert(89), (Status.ACTIVE,)),
    CertCase("expiring+still ending stays", Status.EXPIRING, cert(3), ()),
    CertCase("expiring+gone→verified", Status.EXPIRING, None, (Status.VERIFIED,)),
    CertCase("pending+cert: fields only", Status.PENDING, LONG, ()),
    CertCase("failed+cert: fields only", Status.FAILED, LONG, ()),
    CertCase("failed+none", Status.FAILED, None, (), writes=False),
]


@pytest.mark.parametrize("case", CERT_CASES, ids=[c.id for c in CERT_CASES])
def test_plan_certs(case: CertCase) -> None:
    stored_at, stored_issuer, stored_due = case.stored
    d = domain(
        case.status,
        cert_expires_at=stored_at,
        cert_issuer=stored_issuer,
        cert_renewal_due_at=stored_due,
    )
    certs = {} if case.cert is None else {d.hostname: case.cert}
    changes = plan_certs([d], certs, NOW, EXPIRING_DAYS)
    if not case.writes:
        assert changes == []
        return
    [change] = changes
    assert change.domain is d
    assert tuple(m.target for m in change.moves) == case.moves
    assert change.expires_at == (case.cert.not_after if case.cert else None)
    assert change.issuer == (case.cert.issuer if case.cert else None)
    due = case.cert.not_after - EXPIRING_DAYS * DAY if case.cert else None
    assert change.renewal_due_at == due
    assert all(m.reason and m.message for m in change.moves)


def test_plan_certs_only_touches_the_named_domain() -> None:
    a = domain(Status.VERIFIED)
    b = replace(domain(Status.VERIFIED), id=2, hostname="other.acme.test")
    [change] = plan_certs([a, b], {a.hostname: LONG}, NOW, EXPIRING_DAYS)
    assert change.domain is a


def test_change_rejects_moves_that_do_not_chain() -> None:
    with pytest.raises(IllegalTransition):
        Move(source=Status.VERIFIED, target=Status.EXPIRING, reason="x", message="x")
    move = Move(source=Status.ACTIVE, target=Status.EXPIRING, reason="x", message="x")
    with pytest.raises(ValueError, match="does not follow"):
        CertChange(domain=domain(Status.VERIFIED), expires_at=1.0, issuer="R11", moves=(move,))
    with pytest.raises(ValueError, match="together"):
        CertChange(domain=domain(Status.ACTIVE), expires_at=1.0, issuer=None)


# --- the DNS planner -------------------------------------------------------------------------

POLICY = Policy(
    fast_interval=60,
    fast_window=900,
    slow_interval=300,
    retry_budget=3 * DAY,
    drift_interval=3600,
    drift_grace=3 * DAY,
)
OK = CheckReport(
    hostname="shop.acme.test",
    findings=(
        Finding(check="cname", ok=True, code=None, message="points at shop.apps.example.net"),
        Finding(check="caa", ok=True, code=None, message="no CAA records"),
    ),
    provider="Cloudflare",
)


def failing(code: Code) -> CheckReport:
    return CheckReport(
        hostname="shop.acme.test",
        findings=(
            Finding(check="cname", ok=False, code=code, message=f"{code.value}: fix it"),
            Finding(check="caa", ok=True, code=None, message="no CAA records"),
        ),
        provider=None,
    )


MISSING = failing(Code.CNAME_MISSING)
TIMEOUT = failing(Code.DNS_TIMEOUT)


@dataclass(frozen=True)
class DnsCase:
    id: str
    domain: Domain
    report: CheckReport
    target: Status | None
    next_in: float  # seconds from NOW
    failures: int
    failing_since: float | None
    reason: str | None = None
    requested: bool = False
    code: str | None = None


CREATED = NOW - 100
DNS_CASES = [
    DnsCase("pending ok→verified", domain(Status.PENDING), OK, Status.VERIFIED, 3600, 0, None),
    DnsCase(
        "pending fails early: fast",
        domain(Status.PENDING, failing_since=CREATED, failure_count=1),
        MISSING,
        None,
        60,
        2,
        CREATED,
        code="cname_missing",
    ),
    DnsCase(
        "pending fails late: slow",
        domain(Status.PENDING, failing_since=NOW - 1000),
        MISSING,
        None,
        300,
        1,
        NOW - 1000,
    ),
    DnsCase(
        "pending next check capped at the budget's end",
        domain(Status.PENDING, failing_since=NOW - 3 * DAY + 10),
        MISSING,
        None,
        10,
        1,
        NOW - 3 * DAY + 10,
    ),
    DnsCase(
        "pending budget spent→failed",
        domain(Status.PENDING, failing_since=NOW - 3 * DAY, failure_count=900),
        MISSING,
        Status.FAILED,
        3600,
        901,
        NOW - 3 * DAY,
        reason="cname_missing",
    ),
    DnsCase(
        "pending transient also spends the budget",
        domain(Status.PENDING, failing_since=NOW - 3 * DAY),
        TIMEOUT,
        Status.FAILED,
        3600,
        1,
        NOW - 3 * DAY,
        reason="dns_timeout",
    ),
    DnsCase("failed ok→verified", domain(Status.FAILED), OK, Status.VERIFIED, 3600, 0, None),
    DnsCase(
        "failed fails: stays",
        domain(Status.FAILED, failure_count=5),
        MISSING,
        None,
        3600,
        6,
        None,
    ),
    DnsCase(
        "failed asked again→pending",
        domain(Status.FAILED, failure_count=5),
        MISSING,
        Status.PENDING,
        60,
        1,
        NOW,
        reason="cname_missing",
        requested=True,
    ),
    *(
        DnsCase(
            f"{s} ok stays, drift clock reset",
            domain(s, failing_since=NOW - 50, failure_count=2),
            OK,
            None,
            3600,
            0,
            None,
        )
        for s in (Status.VERIFIED, Status.ACTIVE, Status.EXPIRING)
    ),
    DnsCase(
        "verified moved: grace starts",
        domain(Status.VERIFIED),
        MISSING,
        None,
        3600,
        1,
        NOW,
        code="cname_missing",
    ),
    DnsCase(
        "active moved: next check at the grace end",
        domain(Status.ACTIVE, failing_since=NOW - 3 * DAY + 5, failure_count=70),
        MISSING,
        None,
        5,
        71,
        NOW - 3 * DAY + 5,
    ),
    *(
        DnsCase(
            f"{s} moved past grace→failed",
            domain(s, failing_since=NOW - 3 * DAY, failure_count=72),
            MISSING,
            Status.FAILED,
            3600,
            73,
            NOW - 3 * DAY,
            reason="dns_moved",
            code="dns_moved",
        )
        for s in (Status.VERIFIED, Status.ACTIVE, Status.EXPIRING)
    ),
    DnsCase(
        "verified transient: no grace clock starts",
        domain(Status.VERIFIED, failing_since=None, failure_count=0),
        TIMEOUT,
        None,
        300,
        0,
        None,
    ),
    DnsCase(
        "expiring transient past grace: kept, clock unchanged",
        domain(Status.EXPIRING, failing_since=NOW - 3 * DAY - 1, failure_count=9),
        TIMEOUT,
        None,
        300,
        9,
        NOW - 3 * DAY - 1,
        code="dns_timeout",
    ),
]


@pytest.mark.parametrize("case", DNS_CASES, ids=[c.id for c in DNS_CASES])
def test_plan_check(case: DnsCase) -> None:
    plan = plan_check(case.domain, case.report, NOW, POLICY, requested=case.requested)
    assert (plan.move.target if plan.move else None) == case.target
    assert plan.next_check_at == pytest.approx(NOW + case.next_in)
    assert plan.failure_count == case.failures
    assert plan.failing_since == case.failing_since
    if case.reason is not None:
        assert plan.move is not None
        assert plan.move.reason == case.reason
    if case.code is not None:
        assert plan.last_check_code == case.code
    if case.report.ok:
        assert plan.last_check_code is None
        assert plan.dns_provider == "Cloudflare"


def test_the_planners_cover_every_move_but_removal() -> None:
    moves: set[tuple[Status, Status]] = set()
    for c in CERT_CASES:
        status = c.status
        for target in c.moves:
            moves.add((status, target))
            status = target
    for d in DNS_CASES:
        if d.target is not None:
            moves.add((d.domain.status, d.target))
    assert moves == {move for move in TRANSITIONS if move[1] is not Status.REMOVED}


def certified_fleet(count: int, *, holding: int) -> tuple[list[Domain], dict[str, CertFact]]:
    """`count` active domains, of which the first `holding` still have a stored certificate."""
    domains = [
        domain(Status.ACTIVE, id=i, hostname=f"s{i}.acme.test", cert_expires_at=NOW + 60 * DAY)
        for i in range(count)
    ]
    certs = {d.hostname: replace(cert(60), name=d.hostname) for d in domains[:holding]}
    return domains, certs


@pytest.mark.parametrize(
    ("count", "holding", "guarded"),
    [
        (MASS_LOSS_MIN - 1, 0, False),  # too few to tell a wrong storage path from real losses
        (MASS_LOSS_MIN, 0, True),  # every certificate gone at once
        (40, 19, True),  # more than half gone
        (40, 20, False),  # half gone: planned as usual
        (40, 39, False),
    ],
)
def test_a_scan_losing_most_certificates_at_once_is_a_mass_loss(
    count: int, holding: int, guarded: bool
) -> None:
    domains, certs = certified_fleet(count, holding=holding)
    changes = plan_certs(domains, certs, NOW, EXPIRING_DAYS)
    assert sum(c.loses_certificate for c in changes) == count - holding
    loss = mass_loss(certified(domains), changes)
    assert (loss is not None) is guarded
    if loss is not None:
        assert (loss.gone, loss.certified) == (count - holding, count)


def test_only_demotions_for_a_missing_certificate_lose_one() -> None:
    changes = plan_certs(
        [
            domain(Status.ACTIVE, id=1, hostname="gone.acme.test"),
            domain(Status.EXPIRING, id=2, hostname="gone2.acme.test"),
            domain(Status.VERIFIED, id=3, hostname="new.acme.test"),
        ],
        {"new.acme.test": replace(cert(60), name="new.acme.test")},
        NOW,
        EXPIRING_DAYS,
    )
    assert {c.domain.hostname: c.loses_certificate for c in changes} == {
        "gone.acme.test": True,
        "gone2.acme.test": True,
        "new.acme.test": False,
    }
