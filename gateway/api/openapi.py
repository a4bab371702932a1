"""The OpenAPI 3.0 document of the tenant API, served at /api/v1/openapi.json without a token.

Tests compare its paths with the app's routes and fuzz the API against it, so it cannot drift.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domaingate.store.tenants import TENANT_NAME
from gateway.api import PREFIX
from gateway.api.inputs import MAX_LIMIT
from gateway.api.schemas import APP, LIVE_STATUS, SCHEMAS, ref


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# 409 carries Retry-After only with HOSTNAME_COOLDOWN_ACTIVE; 429 and 503 always do.
_ERROR_RESPONSES = {
    401: "Unauthorized",
    403: "Forbidden",
    409: "Conflict",
    429: "RetryLater",
    503: "RetryLater",
}


def _errors(*statuses: int) -> dict[str, Any]:
    # Every operation but the document itself authenticates against the database, so each can
    # answer 401 and 503.
    return {
        str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES.get(status, 'Error')}"}
        for status in sorted({*statuses, 401, 503})
    }


def _admin_errors(*statuses: int) -> dict[str, Any]:
    """An admin-only operation's errors: a tenant's valid token is 403 on top of the others."""
    return _errors(*statuses, 403)


def _retry_after(required: bool) -> dict[str, Any]:
    return {
        "Retry-After": {
            "required": required,
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 1},
        }
    }


_DOMAIN_PARAM = {
    "name": "domain",
    "in": "path",
    "required": True,
    # A hostname is at most 253 octets. The bound also keeps every request line this document
    # allows under the HTTP parser's 8190-byte limit, even with each character percent-encoded.
    "schema": {"type": "string", "minLength": 1, "maxLength": 253},
    "description": "The hostname; U-labels are accepted and normalised to A-labels",
}
_TENANT_HEADER = {
    "name": "X-Domaingate-Tenant",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": f"^{TENANT_NAME}$"},
    "description": "With the admin token: the tenant to act for (one such header at most)",
}

_DOMAIN_OPS = [_DOMAIN_PARAM, _TENANT_HEADER]
_APP_OPS = [{"name": "app", "in": "path", "required": True, "schema": APP}, _TENANT_HEADER]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "domaingate tenant API",
        "version": "1",
        "description": "Attach custom domains, read their DNS instructions, verify and detach.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
        "responses": {
            "Error": _json(ref("Error"), "An error"),
            "Unauthorized": _json(
                ref("Error"), "UNAUTHORIZED: no bearer token, or one that is unknown or revoked"
            ),
            "Forbidden": _json(
                ref("Error"),
                "FORBIDDEN: a valid token without the right, a tenant's on an admin-only operation",
            ),
            "Conflict": {
                **_json(
                    ref("Error"), "A conflict with the hostname's holder or the domain's state"
                ),
                "headers": _retry_after(required=False),
            },
            "RetryLater": {
                **_json(ref("Error"), "Refused for now: rate-limited, or the database is busy"),
                "headers": _retry_after(required=True),
            },
        },
    },
    "paths": {
        PREFIX + "/domains": {
            "post": {
                "operationId": "attachDomain",
                "summary": "Attach a domain and get its DNS instructions",
                "parameters": [_TENANT_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("AttachRequest")}},
                },
                "responses": {
                    "201": {
                        **_json(ref("Domain"), "Attached; publish the records it lists"),
                        "headers": {
                            "Location": {
                                "required": True,
                                "description": "The new domain's URL",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    **_errors(400, 409, 413, 422, 429),
                },
            },
            "get": {
                "operationId": "listDomains",
                "summary": "List domains, oldest first",
                "parameters": [
                    _TENANT_HEADER,
                    {"name": "app", "in": "query", "schema": APP},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": LIVE_STATUS,
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "next_cursor of the previous page",
                        "schema": {"type": "string", "maxLength": 64},
                    },
                ],
                "responses": {
                    "200": _json(ref("DomainList"), "A page of domains"),
                    **_errors(400),
                },
            },
        },
        PREFIX + "/domains/{domain}": {
            "get": {
                "operationId": "getDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"200": _json(ref("Domain"), "The domain"), **_errors(400, 404)},
            },
            "delete": {
                "operationId": "detachDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"204": {"description": "Detached"}, **_errors(400, 404)},
            },
        },
        PREFIX + "/domains/{domain}/verify": {
            "post": {
                "operationId": "verifyDomain",
                "summary": "Check DNS now",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(ref("Verification"), "The check's findings"),
                    **_errors(400, 404, 409, 429),
                },
            },
        },
        PREFIX + "/domains/{domain}/events": {
            "get": {
                "operationId": "domainEvents",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(ref("EventList"), "State moves, oldest first"),
                    **_errors(400, 404),
                },
            },
        },
        PREFIX + "/account": {
            "get": {
                "operationId": "account",
                "summary": "Who the token is, the quotas, and the tenant's use of them",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(ref("Account"), "The caller"), **_errors(400)},
            }
        },
        PREFIX + "/status": {
            "get": {
                "operationId": "status",
                "summary": "The reconciler's health as the store shows it (admin token only)",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(ref("Status"), "Health"), **_admin_errors(400)},
            }
        },
        PREFIX + "/apps": {
            "get": {
                "operationId": "listApps",
                "summary": "The tenant's apps (with the admin token and no tenant: every app)",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(ref("AppList"), "Apps by name"), **_errors(400)},
            }
        },
        PREFIX + "/apps/{app}": {
            "put": {
                "operationId": "putApp",
                "summary": "Register an app for the tenant, or change its upstream (admin token)",
                "parameters": _APP_OPS,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref("AppRequest")}},
                },
                "responses": {
                    "200": _json(ref("App"), "Changed"),
                    "201": _json(ref("App"), "Registered"),
                    **_admin_errors(400, 409, 413),
                },
            },
            "delete": {
                "operationId": "removeApp",
                "summary": "Remove an app no attached domain uses (admin token)",
                "parameters": _APP_OPS,
                "responses": {"204": {"description": "Removed"}, **_admin_errors(400, 404, 409)},
            },
        },
        PREFIX + "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "This document")},
            }
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
