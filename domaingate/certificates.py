"""What the reconciler knows of a certificate Caddy stores: the value the certificate planner reads.

It lives in the core because the planner (`domaingate.lifecycle.certificates`) does; reading the
files that hold certificates stays in the reconciler (`reconciler.certs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
