"""The gate's in-memory view of allowed hostnames.

The gate answers from this dict alone: no DNS, no disk, no lock on the request path. The watcher
(`gateway.gate.watcher`) keeps it current from the database.
"""

from __future__ import annotations

import sys

from domaingate.states import ALLOWED

_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)


class Allowlist:
    """hostname → (domain id, app) for every domain the gate may allow."""

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[int, str]] = {}
        self.last_seq = 0
        self.loaded = False
        self.synced_at = 0.0

    def __len__(self) -> int:
        return len(self._hosts)

    def app_for(self, hostname: str) -> str | None:
        entry = self._hosts.get(hostname)
        return entry[1] if entry is not None else None

    def __contains__(self, hostname: object) -> bool:
        return hostname in self._hosts

    def apply(self, domain_id: int, hostname: str, app: str, status: str) -> None:
        """Take in one domain row's current state."""
        if status in _ALLOWED_VALUES:
            # Interned: a million domains share a handful of app names.
            self._hosts[hostname] = (domain_id, sys.intern(app))
            return
        entry = self._hosts.get(hostname)
        # Only the row that granted the entry may withdraw it: an old removed row of the same
        # hostname must not revoke a newer, live claim.
        if entry is not None and entry[0] == domain_id:
            del self._hosts[hostname]
