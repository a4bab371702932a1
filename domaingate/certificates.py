"""What the reconciler knows of a certificate Caddy stores: the value the certificate planner reads.

It lives in the core because the planner (`domaingate.lifecycle.certificates`) does; reading the
files that hold certificates stays in the reconciler (`reconciler.certs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFact:
    """The leaf certificate stored for `name`: its validity and who issued it."""

    name: str
    not_before: float
    not_after: float
    issuer: str
    issuer_key: str
    path: Path

    def __post_init__(self) -> None:
        if self.not_after < self.not_before:
            raise ValueError(f"{self.path}: the certificate ends before it begins")
