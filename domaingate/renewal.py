"""When a certificate's renewal is due: the moment after which an active domain turns `expiring`.

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

from domaingate.certificates import CertFact

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
