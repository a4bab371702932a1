"""Serving the gateway: the API and internal listeners on their own sockets, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import uvloop
from aiohttp import web

from domaingate.settings import Settings
from domaingate.targets import described
from gateway import sd_notify
from gateway.api_site import CONNECTIONS, ApiSite
from gateway.app import create_app, create_internal_listener
from gateway.gate.workers import Workers
from gateway.keys import CAPS, GATE

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set. The internal listener opens only once the gate has loaded."""
    api = create_app(settings)
    api_runner = web.AppRunner(api, shutdown_timeout=SHUTDOWN_TIMEOUT)
    internal = create_internal_listener(api)
    await api_runner.setup()  # opens the database and loads the gate's allowlist
    # The loaded allowlist lives as long as the process: moved out of the collector's sight, it
    # is no longer walked by every full collection (~4 ms for a million names, a pause the gate's
    # tail latency would show).
    gc.collect()
    gc.freeze()
    listen = settings.internal_listen
    # With gate workers, every process binds the port itself (SO_REUSEPORT) and the kernel
    # spreads new connections over them.
    caps = api[CAPS]
    relay = api[GATE].relay
    workers = Workers(settings, relay.path) if relay is not None else None
    try:
        await internal.start(listen.host, listen.port, reuse_port=workers is not None)
        try:
            if workers is not None:
                await workers.start()
            api_listen = settings.api_listen
            await ApiSite(api_runner, api_listen.host, api_listen.port, api[CONNECTIONS]).start()
            log.info(
                "gateway ready: internal %s (%d gate process(es)), API %s, database %s; "
                "connections at most %d internal (each process), %d API, of RLIMIT_NOFILE %d",
                settings.internal_listen,
                settings.gate_workers,
                settings.api_listen,
                described(settings.db),
                caps.internal,
                caps.api,
                caps.nofile,
            )
            # Under systemd (Type=notify), Caddy's unit waits for this: the allowlist is loaded
            # and both listeners are open, so no handshake meets a gate that is not there yet.
            sd_notify.notify(
                sd_notify.READY,
                sd_notify.status(f"serving: internal {listen}, API {settings.api_listen}"),
            )
            await stop.wait()
            log.info("stopping gateway")
            sd_notify.notify(sd_notify.STOPPING)
        finally:
            if workers is not None:
                await workers.stop()
            await internal.close()
    finally:
        await api_runner.cleanup()


async def serve(settings: Settings) -> None:
    """`run()` with SIGTERM and SIGINT setting the stop event, nothing more."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def main(settings: Settings) -> None:
    """`serve()` on uvloop: a new-connection ask costs several times less CPU than on the
    standard event loop (bench/RESULTS.md)."""
    uvloop.run(serve(settings))
