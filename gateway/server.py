"""Serving the gateway: the API and internal listeners on their own sockets, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from domaingate.settings import Settings
from domaingate.store.database import described
from gateway.app import create_app, create_internal_app

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set. The internal listener opens only once the gate has loaded."""
    api = create_app(settings)
    api_runner = web.AppRunner(api, shutdown_timeout=SHUTDOWN_TIMEOUT)
    # The gate answers every TLS handshake: an access-log line per ask would cost more than the
    # answer. Its figures are in /metrics.
    internal_runner = web.AppRunner(
        create_internal_app(api), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await api_runner.setup()  # opens the database and loads the gate's allowlist
    # The loaded allowlist lives as long as the process: moved out of the collector's sight, it
    # is no longer walked by every full collection (~4 ms for a million names, a pause the gate's
    # tail latency would show).
    gc.collect()
    gc.freeze()
    try:
        await internal_runner.setup()
        try:
            internal = settings.internal_listen
            await web.TCPSite(internal_runner, internal.host, internal.port).start()
            await web.TCPSite(
                api_runner, settings.api_listen.host, settings.api_listen.port
            ).start()
            log.info(
                "gateway ready: internal %s, API %s, database %s",
                settings.internal_listen,
                settings.api_listen,
                described(settings.db),
            )
            await stop.wait()
            log.info("stopping gateway")
        finally:
            await internal_runner.cleanup()
    finally:
        await api_runner.cleanup()


async def serve(settings: Settings) -> None:
    """`run()` with SIGTERM and SIGINT setting the stop event, nothing more."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)
