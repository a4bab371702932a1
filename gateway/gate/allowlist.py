"""The gate's in-memory view of allowed hostnames.

The gate answers from this dict alone: no DNS, no disk, no lock on the request path. The follower
(`gateway.gate.follow`) keeps it current from the database, and nothing else writes to it: its
reads apply committed rows in order, one read at a time (`gateway.gate.feed`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping

from domaingate.states import ALLOWED

_ALLOWED_VALUES = tuple(status.value for status in ALLOWED)

# UPSTREAM_TEMPLATE filled for (app, tenant), for an app that names no upstream of its own.
Upstream = Callable[[str, str], str]


def resolved(own: str | None, upstream: Upstream, app: str, tenant: str) -> str:
    """Where `/route` sends an app's domains: its own upstream, else UPSTREAM_TEMPLATE's."""
    return own or upstream(app, tenant)


# The rows below are spelled out rather than imported as `domaingate.store.allowlist`'s aliases:
# the gate's request path imports this module, and must not import the store (pyproject.toml).


class Allowlist:
    """hostname → (domain id, app, upstream) for every domain the gate may allow.

    The upstream is resolved when a row is taken in (the app's own, or UPSTREAM_TEMPLATE for
    the app and its tenant), so `/route` answers from memory and nothing in a request chooses it.
    """

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[int, str, str]] = {}
        self.last_seq = 0
        self.loaded = False
        self.synced_at = 0.0

    def __len__(self) -> int:
        return len(self._hosts)

    def route_for(self, hostname: str) -> tuple[str, str] | None:
        """(app, upstream) of an allowed hostname, else None."""
        entry = self._hosts.get(hostname)
        return (entry[1], entry[2]) if entry is not None else None

    def __contains__(self, hostname: object) -> bool:
        return hostname in self._hosts

    def entries(self) -> list[tuple[str, tuple[int, str, str]]]:
        """Every (hostname, (domain id, app, upstream)), as of now: a copy, for the relay to
        send its gate workers (`gateway.gate.relay`) while this one goes on changing."""
        return list(self._hosts.items())

    def replace(self, other: Allowlist) -> None:
        """Answer from `other`'s hostnames from now on (a load made again, in full)."""
        self._hosts = other._hosts

    def load(
        self,
        rows: Iterable[tuple[int, str, str, int]],
        owners: Mapping[tuple[str, int], tuple[str, str]],
    ) -> None:
        """Take in allowed domains (id, hostname, app, tenant id) at start-up; `owners` maps
        (app, tenant id) to the interned (app, upstream) of every app its tenant owns. A domain
        whose app is not its tenant's has no owner and is left out, as `apply` withdraws it.

        One tight loop: this is the gate's start-up at a million domains."""
        hosts = self._hosts
        owner_of = owners.get
        for domain_id, hostname, app, tenant_id in rows:
            owner = owner_of((app, tenant_id))
            if owner is not None:
                hosts[hostname] = (domain_id, owner[0], owner[1])

    def take(
        self, row: tuple[int, str, str, str, str | None, str, int, int], upstream: Upstream
    ) -> None:
        """Take in one changed row as either backend's change read gives it (`GateRow`: id,
        hostname, app, status, the app's own upstream, the tenant's name, whether the app is
        the tenant's, change sequence)."""
        domain_id, hostname, app, status, own, tenant, owned, _seq = row
        # A domain whose app is not its tenant's is never routed (None withdraws it).
        self.apply(
            domain_id,
            hostname,
            app,
            status,
            resolved(own, upstream, app, tenant) if owned else None,
        )

    def apply(
        self, domain_id: int, hostname: str, app: str, status: str, upstream: str | None
    ) -> None:
        """Take in one domain row's current state; `upstream` None: its app is not its tenant's
        (never allowed)."""
        if status in _ALLOWED_VALUES and upstream is not None:
            # Interned: a million domains share a handful of app names and upstreams.
            self._hosts[hostname] = (domain_id, sys.intern(app), sys.intern(upstream))
            return
        entry = self._hosts.get(hostname)
        # Only the row that granted the entry may withdraw it: an old removed row of the same
        # hostname must not revoke a newer, live claim.
        if entry is not None and entry[0] == domain_id:
            del self._hosts[hostname]


class Loading:
    """An allowlist's start-up load, as either backend's store hands it over: every app with its
    owner first (`apps`), then the allowed domains a chunk at a time (`chunk`)."""

    def __init__(self, allowlist: Allowlist, upstream: Upstream) -> None:
        self._allowlist = allowlist
        self._upstream = upstream
        # (app, tenant id) → (the app, its upstream), both interned, resolved once per app.
        self._owners: dict[tuple[str, int], tuple[str, str]] = {}

    def apps(self, apps: Iterable[tuple[str, int, str | None, str]]) -> None:
        """Apps as (app, tenant id, the app's own upstream, the tenant's name)."""
        for app, tenant_id, own, tenant in apps:
            upstream = resolved(own, self._upstream, app, tenant)
            self._owners[(app, tenant_id)] = (sys.intern(app), sys.intern(upstream))

    def chunk(self, rows: Iterable[tuple[int, str, str, int]]) -> None:
        """Allowed domains as (id, hostname, app, tenant id)."""
        self._allowlist.load(rows, self._owners)
