"""`GATE_WORKERS` > 1: the gateway keeps N - 1 gate worker processes running beside itself.

Each worker binds the internal port with SO_REUSEPORT, so the kernel spreads new connections over
the gateway and the workers; a dead worker's socket leaves the group at once and the others
go on answering. The workers follow the gateway's own follower, over its relay's socket
(`gateway.gate.relay`), not the database. Each worker gets the gateway's own Settings over a
pipe it inherits (only the descriptor's number is on its command line) and an environment
without the DOMAINGATE_* variables: the database password and the admin token stay out of what
other local users can read of its process. The supervisor restarts a worker that exits,
waiting longer each time one dies soon after starting, so a worker that cannot start does not
spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from domaingate.settings import ENV_PREFIX, Settings
from domaingate.settings_json import settings_to_json
from gateway.gate.worker import RELAY, SETTINGS_FD

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
MIN_BACKOFF = 0.2
MAX_BACKOFF = 10.0
# A worker that lived this long was healthy: its next restart starts the back-off afresh.
HEALTHY_AFTER = 30.0


class Workers:
    def __init__(self, settings: Settings, relay: Path) -> None:
        self._settings = settings_to_json(settings).encode()
        # The worker's settings are the pipe's alone: none of them from the environment.
        self._environ = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self._count = settings.gate_workers - 1
        self._relay = str(relay)
        self._tasks: list[asyncio.Task[None]] = []
        self.processes: list[asyncio.subprocess.Process | None] = [None] * self._count
        self.restarts = 0

    async def start(self) -> None:
        for slot in range(self._count):
            self._tasks.append(asyncio.create_task(self._keep(slot), name=f"gate-worker-{slot}"))

    async def _spawn(self) -> asyncio.subprocess.Process:
        # Both ends are close-on-exec (os.pipe): the worker inherits the read end alone, through
        # pass_fds, so it sees the end of the settings once the write end below is closed.
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.gate.worker",
                SETTINGS_FD,
                str(read_end),
                RELAY,
                self._relay,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(read_end,),
                env=self._environ,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        await send(write_end, self._settings)
        return process

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


async def send(write_end: int, data: bytes) -> None:
    """`data` into the pipe `write_end`, then close it, without blocking: the loop writes what
    the pipe cannot take at once as the reader reads it. A reader that dies first breaks the
    pipe, which is no error here (a worker's exit is what its supervisor sees)."""
    # Wrapping a descriptor opens nothing: no blocking call here. The transport closes it.
    pipe = os.fdopen(write_end, "wb", buffering=0)
    try:
        transport, _ = await asyncio.get_running_loop().connect_write_pipe(
            asyncio.BaseProtocol, pipe
        )
    except BaseException:
        pipe.close()
        raise
    transport.write(data)
    transport.close()
