"""A certificate as the reconciler finds it in Caddy's storage (`CertFact`, read by
`reconciler.certificates.storage`), and when its renewal is due: the moment after which an
active domain turns `expiring`.

Judged by each certificate's own clock, so 6-day, 45-day and 90-day certificates all work. Caddy
renews in the last third of a certificate's life (or, from 2.8, by ACME Renewal Information); a
renewal is overdue once less than 1/6 of the lifetime is left (half of that last third: 15 days of
a 90-day certificate, 1 day of a 6-day one), or once the window the CA suggests through ARI is over,
whichever comes first. `EXPIRING_DAYS`, when set, replaces both with a fixed number of days before
the end. The due time never lies after the certificate's end, so an ended certificate is always
overdue.

Caddy also keeps `_selectedTime` (the moment it picked inside the window to try) and `_retryAfter`
(when it asks the CA again): its plans, not the CA's deadline, so neither is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DAY = 86400.0
# The share of its lifetime a certificate may have left before its renewal counts as overdue.
OVERDUE_SHARE = 1 / 6


def renewal_due_at(cert: CertFact, expiring_days: float | None) -> float:
    """The moment `cert`'s renewal becomes overdue (see the module docstring)."""
    if expiring_days is not None:
        return cert.not_after - expiring_days * DAY
    due = cert.not_after - (cert.not_after - cert.not_before) * OVERDUE_SHARE
    if cert.renewal_window is not None:
        due = min(due, cert.renewal_window.end)
    return due


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalWindow:
    """The renewal window a CA suggests for one certificate through ACME Renewal Information
    (ARI), as Caddy 2.8+ keeps it in the certificate's `.json`: renew between `start` and `end`."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("a renewal window ends after it starts")


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFact:
    """The leaf certificate stored for `name`: its validity, who issued it, and the renewal window
    its CA suggests (None when Caddy keeps none: before 2.8, a CA without ARI, or a `.json` that
    cannot be read)."""

    name: str
    not_before: float
    not_after: float
    issuer: str
    issuer_key: str
    path: Path
    renewal_window: RenewalWindow | None = None

    def __post_init__(self) -> None:
        if self.not_after < self.not_before:
            raise ValueError(f"{self.path}: the certificate ends before it begins")
