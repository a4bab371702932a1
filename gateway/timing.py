"""Request latency, observed into the process's metrics by listener and route."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.keys import METRICS


def timing_middleware(listener: str) -> Middleware:
    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            resource = request.match_info.route.resource
            # The route template, never the raw path: hostnames must not become label values.
            name = resource.canonical if resource is not None else "unmatched"
            request.config_dict[METRICS].latency(listener, name).observe(
                time.perf_counter() - started
            )

    return timing
