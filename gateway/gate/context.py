"""The gate, wired once: its allowlist loaded and followed for as long as the context lasts.

The gateway's API application (`gateway.app`, in its cleanup context), each gate worker
(`gateway.gate.worker`) and the tests all run a `Gate`, so the gate runs the same way in
each: the same Settings, the same follower, the same listener. The gateway's follows the
database (settings.db_read's standby if set); with gate workers, it serves what it reads to
them over its relay (`gateway.gate.relay`), and each worker's follows that instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from domaingate.settings import Settings
from domaingate.targets import described
from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import Follower
from gateway.gate.listener import GateListener
from gateway.gate.relay import Relay
from gateway.gate.relay_feed import RelayFeed
from gateway.gate.routes import GateRoutes
from gateway.gate.snapshot import Snapshot
from gateway.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Gate:
    """One process's gate: the allowlist it answers from, the follower keeping it current,
    and the metrics it counts in; the gateway's has a relay for its workers. Until it runs,
    its allowlist is not loaded and it denies everything."""

    allowlist: Allowlist
    follower: Follower
    metrics: Metrics
    # GATE_MAX_STALENESS: past it without a fresh view, /tls-ask denies (None: never).
    max_staleness: float | None = None
    relay: Relay | None = None

    @classmethod
    def of(cls, settings: Settings, metrics: Metrics) -> Gate:
        """The gateway's gate, following the database (DB_READ's standby, if set), keeping
        GATE_SNAPSHOT current, and serving its gate workers through a relay if it has any."""
        allowlist = Allowlist()
        follower = Follower.of(
            settings.db,
            allowlist,
            settings.upstream,
            read=settings.db_read,
            on_error=metrics.sync_errors.inc,
            snapshot=_snapshot(settings),
        )
        relay = None
        if settings.gate_workers > 1:
            relay = Relay(allowlist)
            follower.feed = relay.tee(follower.feed)
            relay.counts = follower.count_by_status
        return cls(allowlist, follower, metrics, settings.gate_max_staleness, relay)

    @classmethod
    def worker(cls, settings: Settings, metrics: Metrics, relay: Path) -> Gate:
        """A gate worker's gate, following its gateway's relay at `relay`. No snapshot: a worker
        answers only from what its gateway's follower loaded (`gateway.gate.worker` keeps it off
        the port until then), never from a file its gateway may already know to be stale."""
        allowlist = Allowlist()
        follower = Follower(
            RelayFeed(relay),
            allowlist,
            settings.upstream,
            described_as="the gateway's relay",
            on_error=metrics.sync_errors.inc,
            writes_snapshot=False,
        )
        return cls(allowlist, follower, metrics, settings.gate_max_staleness)

    def listener(self, max_connections: int) -> GateListener:
        """The internal listener (gate, route, health, metrics) on this gate."""
        routes = GateRoutes(
            self.allowlist,
            self.metrics,
            self.follower.count_by_status,
            max_staleness=self.max_staleness,
        )
        shedder = self.metrics.shedder("internal", max_connections)
        return GateListener(routes.table(), routes.refusals(), shedder=shedder)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gate]:
        """Load the allowlist, then follow its changes (serving them to the workers, if a
        relay) until the context ends."""
        async with self.follower.running():
            if self.relay is None:
                yield self
                return
            async with self.relay.serving():
                yield self


def _snapshot(settings: Settings) -> Snapshot:
    return Snapshot(settings.gate_snapshot_path, described(settings.db), settings.upstream_template)
