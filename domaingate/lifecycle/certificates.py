"""The certificate half of the lifecycle: stored certificates and the clock in, typed changes out.

No I/O: the reconciler's certificate job (`reconciler.certificates.job`) scans, plans here,
then applies.

For each live domain the plan compares what the store says (status, cert_expires_at, cert_issuer,
cert_renewal_due_at) with the certificate Caddy holds for the name, and yields one `CertChange` when
they differ:

- verified → active: a certificate that is valid now is stored;
- active → expiring: its renewal is overdue (`domaingate.lifecycle.renewal`), or it has ended;
- expiring → active: a renewed certificate whose renewal is not due yet;
- active/expiring → verified: no certificate is stored any more.

A verified domain whose certificate is valid but already inside the window moves twice in one change
(verified → active → expiring), so both events are sent and no scan is wasted on the middle step.
A verified domain holding only an expired certificate stays verified: "active" promises a valid
certificate. DNS decides pending and failed domains, so for them only the certificate fields follow
the storage. A name the scan could not judge (its file unreadable, or caught half-written) gets no
change at all: a storage fault must not look like a certificate that is gone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from domaingate.lifecycle.moves import Move
from domaingate.lifecycle.renewal import CertFact, renewal_due_at
from domaingate.models import Domain
from domaingate.states import ALLOWED, Status


@dataclass(frozen=True, slots=True, kw_only=True)
class CertChange:
    """What to write for one domain: the certificate fields, then the moves in order."""

    domain: Domain
    expires_at: float | None
    issuer: str | None
    renewal_due_at: float | None = None
    moves: tuple[Move, ...] = ()

    def __post_init__(self) -> None:
        status = self.domain.status
        for move in self.moves:
            if move.source is not status:
                raise ValueError(f"move from {move.source} does not follow {status}")
            status = move.target
        if not (self.expires_at is None) == (self.issuer is None) == (self.renewal_due_at is None):
            raise ValueError("expires_at, issuer and renewal_due_at are set together")

    @property
    def final_status(self) -> Status:
        return self.moves[-1].target if self.moves else self.domain.status

    @property
    def loses_certificate(self) -> bool:
        """An active or expiring domain demoted because no certificate is stored for it."""
        return self.domain.status in _CERTIFIED and self.final_status is Status.VERIFIED


# A scan that finds most certificates gone at once is far likelier to be looking in the wrong
# place (CADDY_STORAGE mistyped, a volume not mounted, Caddy's storage moved) than to have seen
# Caddy lose them, and demoting on that evidence would fire a webhook per domain. Such a scan
# demotes nobody. The gate is unaffected either way: verified, active and expiring all pass it.
MASS_LOSS_SHARE = 0.5
MASS_LOSS_MIN = 10
_CERTIFIED = (Status.ACTIVE, Status.EXPIRING)


@dataclass(frozen=True, slots=True, kw_only=True)
class MassLoss:
    gone: int
    certified: int


def certified(domains: Iterable[Domain]) -> int:
    """How many of `domains` are active or expiring."""
    return sum(1 for domain in domains if domain.status in _CERTIFIED)


def mass_loss(certified: int, changes: Iterable[CertChange]) -> MassLoss | None:
    """The mass loss `changes` would make among `certified` domains (see MASS_LOSS_SHARE)."""
    gone = sum(1 for change in changes if change.loses_certificate)
    if gone >= MASS_LOSS_MIN and gone > MASS_LOSS_SHARE * certified:
        return MassLoss(gone=gone, certified=certified)
    return None


def plan_certs(
    domains: Iterable[Domain],
    certs: Mapping[str, CertFact],
    now: float,
    expiring_days: float | None,
    *,
    unknown: Collection[str] = frozenset(),
) -> list[CertChange]:
    """The changes that bring `domains` in line with the stored `certs` at time `now`; names in
    `unknown` are left alone. `expiring_days` is the EXPIRING_DAYS override, None for the
    certificates' own renewal windows."""
    changes = []
    for domain in domains:
        if domain.hostname in unknown:
            continue
        change = _plan_one(domain, certs.get(domain.hostname), now, expiring_days)
        if change is not None:
            changes.append(change)
    return changes


def _plan_one(
    domain: Domain, cert: CertFact | None, now: float, expiring_days: float | None
) -> CertChange | None:
    status = domain.status
    expires_at = cert.not_after if cert else None
    issuer = cert.issuer if cert else None
    due_at = renewal_due_at(cert, expiring_days) if cert else None
    moves: list[Move] = []
    if status in ALLOWED:
        if cert is None:
            if status is not Status.VERIFIED:
                moves.append(_gone(status))
        else:
            valid_now = cert.not_before <= now < cert.not_after
            overdue = now >= renewal_due_at(cert, expiring_days)
            if status is Status.VERIFIED and valid_now:
                moves.append(_found(cert))
                status = Status.ACTIVE
            if status is Status.ACTIVE and overdue:
                moves.append(_expiring(cert, now, expiring_days))
            elif status is Status.EXPIRING and not overdue:
                moves.append(_renewed(cert, renewal_due_at(cert, expiring_days)))
    stored = (domain.cert_expires_at, domain.cert_issuer, domain.cert_renewal_due_at)
    if not moves and (expires_at, issuer, due_at) == stored:
        return None
    return CertChange(
        domain=domain,
        expires_at=expires_at,
        issuer=issuer,
        renewal_due_at=due_at,
        moves=tuple(moves),
    )


def _found(cert: CertFact) -> Move:
    return Move(
        source=Status.VERIFIED,
        target=Status.ACTIVE,
        reason="certificate_found",
        message=f"a certificate from {cert.issuer} is stored, valid until {_day(cert.not_after)}",
    )


def _expiring(cert: CertFact, now: float, expiring_days: float | None) -> Move:
    if cert.not_after <= now:
        message = f"the certificate ended on {_day(cert.not_after)} and has not been renewed"
    else:
        due = _day(renewal_due_at(cert, expiring_days))
        message = (
            f"the certificate's renewal was due by {due} and has not happened yet; it ends on "
            f"{_day(cert.not_after)}"
        )
    return Move(
        source=Status.ACTIVE, target=Status.EXPIRING, reason="certificate_expiring", message=message
    )


def _renewed(cert: CertFact, due_at: float) -> Move:
    # Also what an ARI refresh that moves the window back into the future looks like: the
    # message says what holds, not that a new certificate came.
    return Move(
        source=Status.EXPIRING,
        target=Status.ACTIVE,
        reason="certificate_renewed",
        message=(
            f"the certificate from {cert.issuer} is valid until {_day(cert.not_after)} and its "
            f"renewal is not due until {_day(due_at)}"
        ),
    )


def _gone(status: Status) -> Move:
    return Move(
        source=status,
        target=Status.VERIFIED,
        reason="certificate_gone",
        message="no certificate for the name is stored any more; Caddy obtains one on demand",
    )


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
