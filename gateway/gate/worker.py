"""A gate worker process (`GATE_WORKERS` > 1): the internal listener alone, on its own allowlist.

Started by the gateway (`gateway.gate.workers`) as `python -m gateway.gate.worker SETTINGS_JSON`.
It binds the internal port beside the gateway (SO_REUSEPORT), loads the allowlist from the
database and follows it as the gateway's own watcher does. No API, no DNS: a few modules and the
allowlist, so its memory is the allowlist's. It stops on SIGTERM, and when its parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass

import uvloop

from domaingate.logs import configure_logging
from domaingate.settings import fill_upstream
from domaingate.settings_values import parse_db
from gateway.gate.allowlist import Allowlist
from gateway.gate.listener import GateListener
from gateway.gate.routes import GateRoutes
from gateway.gate.watcher import sync_for
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

PARENT_CHECK = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """What a worker needs of the gateway's settings, passed on its command line."""

    db: str
    host: str
    port: int
    upstream_template: str
    log_level: str
    # The internal listener's connection cap, as the gateway sized it (gateway.caps).
    max_connections: int

    def upstream(self, app: str, tenant: str) -> str:
        return fill_upstream(self.upstream_template, app, tenant)

    def to_json(self) -> str:
        return json.dumps(
            {
                "db": self.db,
                "host": self.host,
                "port": self.port,
                "upstream_template": self.upstream_template,
                "log_level": self.log_level,
                "max_connections": self.max_connections,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WorkerSettings:
        return cls(**json.loads(text))


async def _orphaned(parent: int) -> None:
    # Polled: a parent's exit raises no event a child can wait on.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(PARENT_CHECK)


async def run(settings: WorkerSettings, parent: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    allowlist, metrics = Allowlist(), Metrics()
    # settings.db as the gateway was given it: a SQLite file, or a PostgreSQL URL to follow.
    sync = sync_for(
        parse_db(settings.db), allowlist, settings.upstream, on_error=metrics.sync_errors.inc
    )
    await sync.open()
    gc.collect()
    gc.freeze()
    routes = GateRoutes(allowlist, metrics, sync.count_by_status)
    shedder = metrics.shedder("internal", settings.max_connections)
    listener = GateListener(routes.table(), routes.refusals(), shedder=shedder)
    tasks = [
        asyncio.create_task(sync.run(), name="allowlist-sync"),
        asyncio.create_task(_orphaned(parent), name="parent-watch"),
        asyncio.create_task(stop.wait(), name="stop"),
    ]
    try:
        await listener.start(settings.host, settings.port, reuse_port=True)
        log.info("gate worker %d ready: %d hostnames", os.getpid(), len(allowlist))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await listener.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sync.close()


def main(argv: list[str]) -> int:
    settings = WorkerSettings.from_json(argv[1])
    configure_logging(settings.log_level)
    uvloop.run(run(settings, os.getppid()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
