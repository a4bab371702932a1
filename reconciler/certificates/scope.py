"""Which domains a certificate scan plans: every live domain now and then, otherwise only those
whose plan can have changed since the last scan.

Planning every live domain at every scan reads and plans the whole table once a minute; on a
million domains that is ~15 CPU-seconds a scan. Between two scans a domain's plan can change only
through:

- the certificate stored for its name (the scan's result compared with the last one, names it
  could not judge included: they count as changed both when they become unknown and when they
  become known again);
- its status or hostname, or its attach (the `seq` the triggers bump);
- the clock, which makes an active domain's renewal overdue (the plan writes when, its
  `cert_renewal_due_at`, into the row: the certificate's own lifetime, the ARI window in its
  `.json`, or EXPIRING_DAYS, all fixed until the certificate or its `.json` changes, which the
  first point covers), or makes a stored certificate that began in the future valid (rare: the
  periodic full plan catches it).

The certificate fields only the reconciler writes, from the plan itself. A scan that held changes
back (the mass-loss guard) or failed before its end leaves the scope as it was or makes the next
scan a full one, and a full one runs every `full_every` seconds regardless.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from domaingate.lifecycle.renewal import CertFact

FULL_EVERY = 3600.0


class CertScope:
    """What the last successful scan saw: its certificates and the change sequence it read to."""

    def __init__(self, *, full_every: float = FULL_EVERY) -> None:
        self.full_every = full_every
        self._certs: Mapping[str, CertFact] | None = None
        self._unknown: frozenset[str] = frozenset()
        self.last_seq = 0
        self._full_at = 0.0

    def full_due(self) -> bool:
        return self._certs is None or time.monotonic() - self._full_at >= self.full_every

    def changed_names(self, certs: Mapping[str, CertFact], unknown: frozenset[str]) -> set[str]:
        """Names whose stored certificate differs from the last scan's, or whose file became
        unknown or known again."""
        if self._certs is None:
            raise RuntimeError("no scan to compare with: plan every domain")
        before = self._certs
        changed = {
            name for name in before.keys() | certs.keys() if before.get(name) != certs.get(name)
        }
        return changed | (unknown ^ self._unknown)

    def done(
        self,
        certs: Mapping[str, CertFact],
        unknown: frozenset[str],
        *,
        seq: int,
        full: bool,
    ) -> None:
        """A scan planned and wrote everything it found, from the database as of `seq`."""
        self._certs = dict(certs)
        self._unknown = unknown
        self.last_seq = seq
        if full:
            self._full_at = time.monotonic()

    def forget(self) -> None:
        """Plan every domain at the next scan."""
        self._certs = None
