"""The internal listener's other routes: health, readiness (is the gate's view fresh?) and the
gateway's Prometheus metrics, with the domain counts read from the store at scrape time.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from domaingate.store import domains
from gateway.keys import ALLOWLIST, API_APP, DB, METRICS

log = logging.getLogger(__name__)

# Readiness: the gate is only trusted while its view of the database is this fresh.
MAX_SYNC_AGE = 5.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _sync_age(request: web.Request) -> float:
    allowlist = request.app[ALLOWLIST]
    return time.monotonic() - allowlist.synced_at if allowlist.loaded else float("inf")


async def readyz(request: web.Request) -> web.Response:
    allowlist = request.app[ALLOWLIST]
    age = _sync_age(request)
    ready = allowlist.loaded and age <= MAX_SYNC_AGE
    body = {
        "ready": ready,
        "allowed_hostnames": len(allowlist),
        "sync_age_seconds": round(age, 3) if age != float("inf") else None,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    registry.allowlist_size.set(len(request.app[ALLOWLIST]))
    age = _sync_age(request)
    registry.sync_lag.set(age if age != float("inf") else -1)
    try:
        registry.set_domain_counts(await domains.count_by_status(request.app[API_APP][DB]))
    except Exception:
        # Counts are a convenience; the gate's own figures must still be scrapeable.
        log.exception("could not count domains for /metrics")
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
