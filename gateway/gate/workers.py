"""`GATE_WORKERS` > 1: the gateway keeps N - 1 gate worker processes running beside itself.

Each worker binds the internal port with SO_REUSEPORT, so the kernel spreads new connections over
the gateway and the workers; a dead worker's socket leaves the group at once and the others
go on answering. The supervisor restarts a worker that exits, waiting longer each time one
dies soon after starting, so a worker that cannot start does not spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time

from domaingate.settings import Settings
from gateway.gate.worker import WorkerSettings

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
MIN_BACKOFF = 0.2
MAX_BACKOFF = 10.0
# A worker that lived this long was healthy: its next restart starts the back-off afresh.
HEALTHY_AFTER = 30.0


class Workers:
    def __init__(self, settings: Settings, max_connections: int) -> None:
        listen = settings.internal_listen
        self._config = WorkerSettings(
            db=str(settings.db),
            host=listen.host,
            port=listen.port,
            upstream_template=settings.upstream_template,
            log_level=settings.log_level,
            max_connections=max_connections,
        ).to_json()
        self._count = settings.gate_workers - 1
        self._tasks: list[asyncio.Task[None]] = []
        self.processes: list[asyncio.subprocess.Process | None] = [None] * self._count
        self.restarts = 0

    async def start(self) -> None:
        for slot in range(self._count):
            self._tasks.append(asyncio.create_task(self._keep(slot), name=f"gate-worker-{slot}"))

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.gate.worker",
            self._config,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _keep(self, slot: int) -> None:
        backoff = MIN_BACKOFF
        while True:
            started = time.monotonic()
            process = await self._spawn()
            self.processes[slot] = process
            code = await process.wait()
            self.processes[slot] = None
            lived = time.monotonic() - started
            backoff = MIN_BACKOFF if lived > HEALTHY_AFTER else min(backoff * 2, MAX_BACKOFF)
            log.error(
                "gate worker %d exited with %s; restarting in %.1f s", process.pid, code, backoff
            )
            self.restarts += 1
            await asyncio.sleep(backoff)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process is not None]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        live = [p for p in self.processes if p is not None and p.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in live:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._tasks = []
        log.debug("gate workers stopped (pid %d)", os.getpid())
