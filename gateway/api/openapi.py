"""The OpenAPI 3.0 document of the tenant API, served at /api/v1/openapi.json without a token.

Tests compare its paths with the app's routes and fuzz the API against it, so it cannot drift.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domaingate.apps import MAX_UPSTREAM
from domaingate.errors import error_codes
from domaingate.hostnames import LDH_LABEL
from domaingate.states import Status
from domaingate.store.tenants import TENANT_NAME
from gateway.api.inputs import MAX_LIMIT

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {**_TIME, "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object: the API sends these fields, every one unless `optional`, and no others."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


# 409 carries Retry-After only with HOSTNAME_COOLDOWN_ACTIVE; 429 and 503 always do.
_ERROR_RESPONSES = {409: "Conflict", 429: "RetryLater", 503: "RetryLater"}


def _errors(*statuses: int) -> dict[str, Any]:
    # Every operation but the document itself authenticates against the database, so each can
    # answer 401 and 503.
    return {
        str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES.get(status, 'Error')}"}
        for status in sorted({*statuses, 401, 503})
    }


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

_APP = {"type": "string", "pattern": f"^{LDH_LABEL}$"}
# The API never shows a removed domain.
_LIVE_STATUS = {"type": "string", "enum": [s.value for s in Status if s is not Status.REMOVED]}

_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    # Every error class's code (domaingate.errors), and no other.
                    "code": {"type": "string", "enum": error_codes()},
                    "message": {"type": "string"},
                    "retry_after": {"type": "integer", "minimum": 1},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "limit": {"type": "integer"},
                    "domains": {"type": "integer"},
                },
                optional=("retry_after", "fields", "limit", "domains"),
            )
        }
    ),
    "Record": _object(
        {
            "type": {"type": "string", "enum": ["CNAME", "TXT", "A", "AAAA"]},
            "name": {"type": "string"},
            "value": {"type": "string"},
        }
    ),
    "CheckError": {
        **_object({"code": {"type": "string"}, "message": {"type": "string"}}),
        "nullable": True,
    },
    "Domain": _object(
        {
            "domain": {"type": "string"},
            "app": {"type": "string"},
            "tenant": {"type": "string"},
            "status": _LIVE_STATUS,
            "kind": {"type": "string", "enum": ["subdomain", "apex"]},
            "method": {"type": "string", "enum": ["cname", "txt"]},
            "txt_record": _object({"name": {"type": "string"}, "value": {"type": "string"}}),
            "instructions": _object(
                {
                    "records": {"type": "array", "items": _ref("Record")},
                    "notes": {"type": "array", "items": {"type": "string"}},
                }
            ),
            "created_at": _TIME,
            "updated_at": _TIME,
            "verified_at": _NULLABLE_TIME,
            "last_checked_at": _NULLABLE_TIME,
            "next_check_at": _NULLABLE_TIME,
            "last_check_error": _ref("CheckError"),
            "failure_count": {"type": "integer", "minimum": 0},
            "dns_provider": {"type": "string", "nullable": True},
            "cert_expires_at": _NULLABLE_TIME,
            "cert_issuer": {"type": "string", "nullable": True},
            "cert_renewal_due_at": {
                **_NULLABLE_TIME,
                "description": "When the certificate's renewal becomes overdue: past it an active "
                "domain turns expiring (less than 1/6 of the certificate's lifetime left, the end "
                "of the renewal window its CA suggests, or EXPIRING_DAYS before its end)",
            },
            "now": _TIME,
        }
    ),
    "DomainList": _object(
        {
            "domains": {"type": "array", "items": _ref("Domain")},
            "next_cursor": {"type": "string", "nullable": True},
            "now": _TIME,
        }
    ),
    "Verification": _object(
        {
            "verified": {"type": "boolean"},
            "status": _LIVE_STATUS,
            "checks": {
                "type": "array",
                "items": _object(
                    {
                        "check": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "code": {"type": "string", "nullable": True},
                        "message": {"type": "string"},
                    }
                ),
            },
            "last_check_error": _ref("CheckError"),
            "last_checked_at": _NULLABLE_TIME,
            "now": _TIME,
        }
    ),
    "EventList": _object(
        {
            "domain": {"type": "string"},
            "events": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "type": {"type": "string"},
                        "from_status": {"type": "string", "nullable": True},
                        "to_status": {"type": "string"},
                        "reason": {"type": "string", "nullable": True},
                        "message": {"type": "string", "nullable": True},
                        "created_at": _TIME,
                    }
                ),
            },
            "now": _TIME,
        }
    ),
    "Account": _object(
        {
            "admin": {"type": "boolean"},
            "tenant": {"type": "string", "nullable": True},
            "limits": _object(
                {
                    "max_domains_per_tenant": {"type": "integer", "minimum": 1},
                    "max_domains_per_app": {"type": "integer", "minimum": 1, "nullable": True},
                }
            ),
            "usage": {
                **_object(
                    {
                        "domains": {"type": "integer", "minimum": 0},
                        "apps": {
                            "type": "array",
                            "items": _object(
                                {"app": {"type": "string"}, "domains": {"type": "integer"}}
                            ),
                        },
                    }
                ),
                "nullable": True,
            },
            "now": _TIME,
        }
    ),
    "Status": _object(
        {
            "reconciler": _object(
                {
                    "lease_held": {"type": "boolean"},
                    "holder": {"type": "string", "nullable": True},
                    "lease_expires_at": _NULLABLE_TIME,
                    "last_check_at": _NULLABLE_TIME,
                    "checks_overdue": {"type": "integer", "minimum": 0},
                }
            ),
            "outbox": _object(
                {"backlog": {"type": "integer", "minimum": 0}, "oldest_at": _NULLABLE_TIME}
            ),
            "counts": _object(
                {name: {"type": "integer", "minimum": 0} for name in _LIVE_STATUS["enum"]}
            ),
            "now": _TIME,
        }
    ),
    "App": _object(
        {
            "app": _APP,
            "upstream": {"type": "string", "nullable": True},
            "tenant": {"type": "string"},
            "now": _TIME,
        },
        optional=("tenant", "now"),
    ),
    "AppList": _object({"apps": {"type": "array", "items": _ref("App")}, "now": _TIME}),
    "AppRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "upstream": {
                "type": "string",
                "nullable": True,
                "maxLength": MAX_UPSTREAM,
                "description": "host:port for /route (null or absent: UPSTREAM_TEMPLATE)",
                "example": "shop-backend.internal:8080",
            }
        },
    },
    "AttachRequest": {
        "type": "object",
        "required": ["domain", "app"],
        "additionalProperties": False,
        "properties": {
            "domain": {"type": "string", "example": "shop.example.com"},
            "app": _APP,
        },
    },
}

_DOMAIN_OPS = [_DOMAIN_PARAM, _TENANT_HEADER]
_APP_OPS = [{"name": "app", "in": "path", "required": True, "schema": _APP}, _TENANT_HEADER]

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
        "schemas": _SCHEMAS,
        "responses": {
            "Error": _json(_ref("Error"), "An error"),
            "Conflict": {
                **_json(
                    _ref("Error"), "A conflict with the hostname's holder or the domain's state"
                ),
                "headers": _retry_after(required=False),
            },
            "RetryLater": {
                **_json(_ref("Error"), "Refused for now: rate-limited, or the database is busy"),
                "headers": _retry_after(required=True),
            },
        },
    },
    "paths": {
        "/api/v1/domains": {
            "post": {
                "operationId": "attachDomain",
                "summary": "Attach a domain and get its DNS instructions",
                "parameters": [_TENANT_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AttachRequest")}},
                },
                "responses": {
                    "201": {
                        **_json(_ref("Domain"), "Attached; publish the records it lists"),
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
                    {"name": "app", "in": "query", "schema": _APP},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": _LIVE_STATUS,
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
                    "200": _json(_ref("DomainList"), "A page of domains"),
                    **_errors(400),
                },
            },
        },
        "/api/v1/domains/{domain}": {
            "get": {
                "operationId": "getDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"200": _json(_ref("Domain"), "The domain"), **_errors(400, 404)},
            },
            "delete": {
                "operationId": "detachDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"204": {"description": "Detached"}, **_errors(400, 404)},
            },
        },
        "/api/v1/domains/{domain}/verify": {
            "post": {
                "operationId": "verifyDomain",
                "summary": "Check DNS now",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(_ref("Verification"), "The check's findings"),
                    **_errors(400, 404, 409, 429),
                },
            },
        },
        "/api/v1/domains/{domain}/events": {
            "get": {
                "operationId": "domainEvents",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(_ref("EventList"), "State moves, oldest first"),
                    **_errors(400, 404),
                },
            },
        },
        "/api/v1/account": {
            "get": {
                "operationId": "account",
                "summary": "Who the token is, the quotas, and the tenant's use of them",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(_ref("Account"), "The caller"), **_errors(400)},
            }
        },
        "/api/v1/status": {
            "get": {
                "operationId": "status",
                "summary": "The reconciler's health as the store shows it (admin token only)",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(_ref("Status"), "Health"), **_errors(400, 403)},
            }
        },
        "/api/v1/apps": {
            "get": {
                "operationId": "listApps",
                "summary": "The tenant's apps (with the admin token and no tenant: every app)",
                "parameters": [_TENANT_HEADER],
                "responses": {"200": _json(_ref("AppList"), "Apps by name"), **_errors(400)},
            }
        },
        "/api/v1/apps/{app}": {
            "put": {
                "operationId": "putApp",
                "summary": "Register an app for the tenant, or change its upstream (admin token)",
                "parameters": _APP_OPS,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("AppRequest")}},
                },
                "responses": {
                    "200": _json(_ref("App"), "Changed"),
                    "201": _json(_ref("App"), "Registered"),
                    **_errors(400, 409, 413),
                },
            },
            "delete": {
                "operationId": "removeApp",
                "summary": "Remove an app no attached domain uses (admin token)",
                "parameters": _APP_OPS,
                "responses": {"204": {"description": "Removed"}, **_errors(400, 404, 409)},
            },
        },
        "/api/v1/openapi.json": {
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
    app.router.add_get("/api/v1/openapi.json", openapi)
