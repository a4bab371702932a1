"""A gate worker process (`GATE_WORKERS` > 1): the internal listener alone, on its own allowlist.

Started by the gateway (`gateway.gate.workers`) as
`python -m gateway.gate.worker --settings-fd N --relay PATH`: it reads the gateway's own Settings
from descriptor N, a pipe it inherited, to its end, so no secret of them (the database password,
the admin token) is on its command line or in its environment for another local user to read.
It binds the internal port beside the gateway (SO_REUSEPORT), loads the allowlist from the
gateway's relay at PATH and follows it there (`gateway.gate.relay_feed`): one follower of the
database per edge, the gateway's. No API, no DNS, no database connection: a few modules and the
allowlist, so its memory is the allowlist's. It stops on SIGTERM, and when its parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop

from domaingate.logs import configure_logging
from domaingate.settings import Settings
from domaingate.settings_json import settings_from_json
from gateway.caps import connection_caps
from gateway.gate.context import Gate
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

PARENT_CHECK = 1.0
LOAD_POLL = 0.05
SETTINGS_FD = "--settings-fd"
RELAY = "--relay"


def read_settings(fd: int) -> Settings:
    """The Settings the gateway wrote to the pipe `fd`, which is closed once read."""
    with open(fd, "rb") as pipe:
        return settings_from_json(pipe.read().decode())


async def _orphaned(parent: int) -> None:
    # Polled: a parent's exit raises no event a child can wait on.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(PARENT_CHECK)


async def _loaded(gate: Gate) -> None:
    # Polled: the follower loads (and loads again) on its own schedule and raises no event.
    while not gate.allowlist.loaded:  # noqa: ASYNC110
        await asyncio.sleep(LOAD_POLL)


async def run(settings: Settings, parent: int, relay: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    async with Gate.worker(settings, metrics, relay).running() as gate:
        listener = gate.listener(connection_caps(settings).internal)
        tasks = [
            asyncio.create_task(_orphaned(parent), name="parent-watch"),
            asyncio.create_task(stop.wait(), name="stop"),
        ]
        try:
            # Off the port until the relay has given it a load (its gateway may be serving a
            # snapshot through an outage meanwhile): the kernel hands a bound worker its share of
            # the connections, and a worker with nothing loaded would deny them all.
            loaded = asyncio.create_task(_loaded(gate), name="loaded")
            await asyncio.wait([loaded, *tasks], return_when=asyncio.FIRST_COMPLETED)
            loaded.cancel()
            if not gate.allowlist.loaded:
                return
            gc.collect()
            gc.freeze()
            listen = settings.internal_listen
            await listener.start(listen.host, listen.port, reuse_port=True)
            log.info("gate worker %d ready: %d hostnames", os.getpid(), len(gate.allowlist))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await listener.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def main(argv: list[str]) -> int:
    if (
        len(argv) != 5
        or argv[1] != SETTINGS_FD
        or not argv[2].isdigit()
        or argv[3] != RELAY
        or not argv[4]
    ):
        print(f"usage: python -m gateway.gate.worker {SETTINGS_FD} N {RELAY} PATH", file=sys.stderr)
        return 2
    settings = read_settings(int(argv[2]))
    configure_logging(settings.log_level)
    uvloop.run(run(settings, os.getppid(), Path(argv[4])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
