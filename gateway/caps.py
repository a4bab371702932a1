"""Caps on the connections each listener holds open, sized from the process's descriptor limit.

The API listener, the internal listener (the gate), the database, the DNS checker and the
process itself share one `RLIMIT_NOFILE`. Every open connection is a descriptor, so a listener
without a cap lets whoever reaches it take them all, and then the internal listener can accept
nothing: Caddy's asks go unanswered. Each listener therefore holds at most its cap, and what the
caps leave of the limit is kept for everything else (`reserve_for`).

At its cap, a listener makes room for a new connection by closing its oldest one that waits on
its client (nothing asked yet, a request head still arriving, or idle between requests): a
client that sends its request at once, as Caddy does, is always served, however many others
hold connections open doing nothing. When every connection is being answered, the new one is
accepted and closed at once (so the backlog never fills) instead.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from domaingate.settings import Settings, SettingsError

# Descriptors kept outside both caps where the limit allows: the DNS checker's 256 queries in
# flight (domaingate.dns.inflight) and 128 for the database, the logs, the event loop, the gate
# workers' pipes and the clients of the moment.
RESERVE = 384
# A limit of "unlimited" (never seen for descriptors, but possible) is sized as this many.
UNLIMITED = 1 << 20


class Sheddable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Sheddable)


@dataclass(frozen=True, slots=True)
class Caps:
    """How many connections the API and the internal listener may each hold open."""

    api: int
    internal: int
    nofile: int


def descriptor_limit() -> int:
    """This process's soft `RLIMIT_NOFILE`: the most descriptors it can have open at once."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def reserve_for(nofile: int) -> int:
    """Descriptors left outside the caps: a quarter of the limit, and at least `RESERVE` where
    that leaves the listeners half of it."""
    return max(nofile // 4, min(RESERVE, nofile // 2))


def caps_for(nofile: int, *, api: int | None = None, internal: int | None = None) -> Caps:
    """The caps under a limit of `nofile`: those given, else a third of what the reserve leaves
    for the API and two thirds for the internal listener, which Caddy opens a connection to
    for nearly every ask. Raises ValueError when given caps leave less than the reserve."""
    room = nofile - reserve_for(nofile)
    caps = Caps(
        api=api if api is not None else max(1, room // 3),
        internal=internal if internal is not None else max(1, room - room // 3),
        nofile=nofile,
    )
    if (api is not None or internal is not None) and caps.api + caps.internal > room:
        raise ValueError(
            f"API_MAX_CONNECTIONS ({caps.api}) and INTERNAL_MAX_CONNECTIONS ({caps.internal}) "
            f"leave fewer than {reserve_for(nofile)} of the {nofile} descriptors RLIMIT_NOFILE "
            "allows for the database, DNS and the process; lower them or raise LimitNOFILE"
        )
    return caps


def connection_caps(settings: Settings) -> Caps:
    """Both listeners' connection caps under this process's descriptor limit, as settings give
    or size them. The gateway and its gate workers size them alike (a worker inherits the
    gateway's limit)."""
    try:
        return caps_for(
            descriptor_limit(),
            api=settings.api_max_connections,
            internal=settings.internal_max_connections,
        )
    except ValueError as exc:
        given = settings.internal_max_connections is not None
        raise SettingsError(f"{'INTERNAL' if given else 'API'}_MAX_CONNECTIONS", str(exc)) from exc


class Refused(asyncio.Protocol):
    """A connection over the cap: accepted, so the backlog does not fill, and closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Shedder:
    """One listener's cap over its `connections` (oldest first, each with its deadline), and
    how many it has refused and evicted (exported by gateway.metrics)."""

    __slots__ = ("evicted", "limit", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused = 0
        self.evicted = 0

    def admit(self, connections: OrderedDict[C, float], waiting: Callable[[C], bool]) -> bool:
        """Whether a new connection may open: below the cap, or once the oldest connection for
        which `waiting` holds is closed to make room. False: refuse it (counted)."""
        if len(connections) < self.limit:
            return True
        for connection in connections:
            if waiting(connection):
                # Out of the count now: its descriptor goes when the loop closes it, at once.
                del connections[connection]
                connection.close()
                self.evicted += 1
                return True
        self.refused += 1
        return False
