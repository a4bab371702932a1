"""The gate, wired once: its allowlist loaded and followed for as long as the context lasts.

The gateway's API application (`gateway.app`, in its cleanup context), each gate worker
(`gateway.gate.worker`) and the tests all run a `Gate`, so the gate runs the same way in
each: the same Settings, the same follower, the same listener.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from domaingate.settings import Settings
from domaingate.targets import described
from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import Follower
from gateway.gate.listener import GateListener
from gateway.gate.routes import GateRoutes
from gateway.gate.snapshot import Snapshot
from gateway.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Gate:
    """One process's gate: the allowlist it answers from, the follower keeping it current,
    and the metrics it counts in. Until it runs, its allowlist is not loaded and it denies
    everything."""

    allowlist: Allowlist
    follower: Follower
    metrics: Metrics
    # GATE_MAX_STALENESS: past it without a fresh view, /tls-ask denies (None: never).
    max_staleness: float | None = None

    @classmethod
    def of(cls, settings: Settings, metrics: Metrics, *, writes_snapshot: bool = True) -> Gate:
        """`writes_snapshot`: this process keeps GATE_SNAPSHOT current (the gateway; its gate
        workers only read it at start)."""
        allowlist = Allowlist()
        snapshot = Snapshot(
            settings.gate_snapshot_path, described(settings.db), settings.upstream_template
        )
        follower = Follower.of(
            settings.db,
            allowlist,
            settings.upstream,
            on_error=metrics.sync_errors.inc,
            snapshot=snapshot,
            writes_snapshot=writes_snapshot,
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
        """Load the allowlist from settings.db, then follow its changes until the context
        ends."""
        async with self.follower.running():
            yield self


def gate_context(
    settings: Settings, metrics: Metrics, *, writes_snapshot: bool = True
) -> contextlib.AbstractAsyncContextManager[Gate]:
    """A gate for `settings`, running for as long as the context lasts."""
    return Gate.of(settings, metrics, writes_snapshot=writes_snapshot).running()
