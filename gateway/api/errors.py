"""One middleware that turns every failure into `{"error": {"code", "message", …}}`.

Nothing a client sends may produce an HTML error page or a bare 500.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from domaingate.errors import (
    AttachRateLimited,
    DomaingateError,
    HostnameCooldownActive,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
    VerifyRateLimited,
)
from domaingate.store import errors as store_errors
from gateway.api.inputs import MAX_BODY
from gateway.keys import METRICS

log = logging.getLogger(__name__)

# aiohttp's own refusals, by HTTP status, as the error each one is (anything else: 400's).
_HTTP_ERRORS: dict[int, type[DomaingateError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    415: InvalidRequest,
}


def error_response(error: DomaingateError, status: int | None = None) -> web.Response:
    """`error` as JSON, with its own HTTP status unless `status` says otherwise."""
    return web.json_response(error.body(), status=status or error.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomaingateError as exc:
        response = error_response(exc)
        if isinstance(exc, VerifyRateLimited | HostnameCooldownActive | AttachRateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = (
            PayloadTooLarge(MAX_BODY)
            if exc.status == 413
            else _HTTP_ERRORS.get(exc.status, InvalidRequest)(exc.reason)
        )
        # The status stays aiohttp's (415 is an INVALID_REQUEST, answered as 415).
        response = error_response(error, exc.status)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except store_errors.StoreUnavailable as exc:
        # Locked by another writer past the busy timeout, or the disk is full: the request did
        # not happen, and saying so lets the client retry. An operating condition, not a bug:
        # one line without a traceback, and a count by cause.
        cause = exc.cause
        request.config_dict[METRICS].store_errors.labels(cause).inc()
        log.warning(
            "database unavailable (%s) while serving %s %s: %s",
            cause,
            request.method,
            request.path,
            exc,
        )
        response = error_response(StoreUnavailable())
        response.headers["Retry-After"] = "1"
        return response
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(InternalError())
