"""The reconciler's internals that are not operator settings: fixed in production, shortened by
tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.certificates.scope import FULL_EVERY
from reconciler.webhooks import Backoff


@dataclass(frozen=True, slots=True, kw_only=True)
class Tuning:
    """Internals that are not operator settings: fixed in production, shortened by tests."""

    lease_ttl: float = 30.0
    webhook_interval: float = 1.0
    cleanup_interval: float = 30.0
    webhook_backoff: Backoff = field(default_factory=Backoff)
    # How long running jobs and DNS checks may take to write their results at shutdown.
    shutdown_grace: float = 10.0
    # Between full certificate plans, scans plan only what changed (reconciler.certificates.scope).
    cert_full_every: float = FULL_EVERY

    def __post_init__(self) -> None:
        for name in (
            "lease_ttl",
            "webhook_interval",
            "cleanup_interval",
            "shutdown_grace",
            "cert_full_every",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
