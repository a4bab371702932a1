"""One middleware that turns every failure into `{"error": {"code", "message", …}}`.

Nothing a client sends may produce an HTML error page or a bare 500.
"""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web
from aiohttp.typedefs import Handler

from domaingate.errors import (
    AttachRateLimited,
    DomaingateError,
    HostnameCooldownActive,
    VerifyRateLimited,
)
from domaingate.store.database import failure_cause
from gateway.keys import METRICS

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "INVALID_REQUEST",
}


def error_response(status: int, code: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomaingateError as exc:
        response = web.json_response(exc.body(), status=exc.status)
        if isinstance(exc, VerifyRateLimited | HostnameCooldownActive | AttachRateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "INVALID_REQUEST")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is larger than 64 KiB"
        response = error_response(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except sqlite3.OperationalError as exc:
        # Locked by another writer past the busy timeout, or the disk is full: the request did
        # not happen, and saying so lets the client retry. An operating condition, not a bug:
        # one line without a traceback, and a count by cause.
        cause = failure_cause(exc)
        request.app[METRICS].store_errors.labels(cause).inc()
        log.warning(
            "database unavailable (%s) while serving %s %s: %s",
            cause,
            request.method,
            request.path,
            exc,
        )
        response = error_response(
            503, "STORE_UNAVAILABLE", "the database is busy or unavailable; retry shortly"
        )
        response.headers["Retry-After"] = "1"
        return response
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "INTERNAL", "an unexpected error occurred; it has been logged")
