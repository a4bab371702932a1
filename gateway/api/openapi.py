"""The OpenAPI 3.0 document of the tenant API, served at /api/v1/openapi.json without a token.

Tests compare its paths with the app's routes and fuzz the API against it, so it cannot drift.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.inputs import MAX_LIMIT
from gateway.states import Status

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {**_TIME, "nullable": True}
_ERROR_CODES = [
    "INVALID_HOSTNAME",
    "WILDCARD_NOT_SUPPORTED",
    "RESERVED_HOSTNAME",
    "INVALID_APP",
    "INVALID_REQUEST",
    "UNAUTHORIZED",
    "DOMAIN_NOT_FOUND",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "HOSTNAME_ALREADY_REGISTERED",
    "HOSTNAME_COOLDOWN_ACTIVE",
    "INVALID_STATE",
    "PAYLOAD_TOO_LARGE",
    "QUOTA_EXCEEDED",
    "VERIFY_RATE_LIMITED",
    "STORE_UNAVAILABLE",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": "#/components/responses/Error"} for status in statuses}


_DOMAIN_PARAM = {
    "name": "domain",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 1024},
    "description": "The hostname; U-labels are accepted and normalised to A-labels",
}
_TENANT_HEADER = {
    "name": "X-Domaingate-Tenant",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "With the admin token: the tenant to act for",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": _ERROR_CODES},
                    "message": {"type": "string"},
                    "retry_after": {"type": "integer"},
                },
                "additionalProperties": True,
            }
        },
    },
    "Record": {
        "type": "object",
        "required": ["type", "name", "value"],
        "properties": {
            "type": {"type": "string", "enum": ["CNAME", "TXT", "A", "AAAA"]},
            "name": {"type": "string"},
            "value": {"type": "string"},
        },
    },
    "CheckError": {
        "type": "object",
        "nullable": True,
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Domain": {
        "type": "object",
        "required": [
            "domain",
            "app",
            "tenant",
            "status",
            "kind",
            "method",
            "txt_record",
            "instructions",
            "created_at",
            "updated_at",
            "verified_at",
            "last_checked_at",
            "next_check_at",
            "last_check_error",
            "failure_count",
            "dns_provider",
            "cert_expires_at",
            "cert_issuer",
            "now",
        ],
        "properties": {
            "domain": {"type": "string"},
            "app": {"type": "string"},
            "tenant": {"type": "string"},
            "status": {
                "type": "string",
                "enum": [s.value for s in Status if s is not Status.REMOVED],
            },
            "kind": {"type": "string", "enum": ["subdomain", "apex"]},
            "method": {"type": "string", "enum": ["cname", "txt"]},
            "txt_record": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
            },
            "instructions": {
                "type": "object",
                "required": ["records", "notes"],
                "properties": {
                    "records": {"type": "array", "items": _ref("Record")},
                    "notes": {"type": "array", "items": {"type": "string"}},
                },
            },
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
            "now": _TIME,
        },
    },
    "DomainList": {
        "type": "object",
        "required": ["domains", "next_cursor", "now"],
        "properties": {
            "domains": {"type": "array", "items": _ref("Domain")},
            "next_cursor": {"type": "string", "nullable": True},
            "now": _TIME,
        },
    },
    "Verification": {
        "type": "object",
        "required": ["verified", "status", "checks", "last_check_error", "last_checked_at", "now"],
        "properties": {
            "verified": {"type": "boolean"},
            "status": {"type": "string"},
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["check", "ok", "code", "message"],
                    "properties": {
                        "check": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "code": {"type": "string", "nullable": True},
                        "message": {"type": "string"},
                    },
                },
            },
            "last_check_error": _ref("CheckError"),
            "last_checked_at": _NULLABLE_TIME,
            "now": _TIME,
        },
    },
    "EventList": {
        "type": "object",
        "required": ["domain", "events", "now"],
        "properties": {
            "domain": {"type": "string"},
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "type",
                        "from_status",
                        "to_status",
                        "reason",
                        "message",
                        "created_at",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "type": {"type": "string"},
                        "from_status": {"type": "string", "nullable": True},
                        "to_status": {"type": "string"},
                        "reason": {"type": "string", "nullable": True},
                        "message": {"type": "string", "nullable": True},
                        "created_at": _TIME,
                    },
                },
            },
            "now": _TIME,
        },
    },
    "AttachRequest": {
        "type": "object",
        "required": ["domain", "app"],
        "additionalProperties": False,
        "properties": {
            "domain": {"type": "string", "example": "shop.example.com"},
            "app": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
        },
    },
}

_DOMAIN_OPS = [_DOMAIN_PARAM, _TENANT_HEADER]

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
        "responses": {"Error": _json(_ref("Error"), "An error")},
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
                    "201": _json(_ref("Domain"), "Attached; publish the records it lists"),
                    **_errors(400, 401, 409, 413, 422, 503),
                },
            },
            "get": {
                "operationId": "listDomains",
                "summary": "List domains, oldest first",
                "parameters": [
                    _TENANT_HEADER,
                    {"name": "app", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": [s.value for s in Status if s is not Status.REMOVED],
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(_ref("DomainList"), "A page of domains"),
                    **_errors(400, 401, 503),
                },
            },
        },
        "/api/v1/domains/{domain}": {
            "get": {
                "operationId": "getDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"200": _json(_ref("Domain"), "The domain"), **_errors(400, 401, 404)},
            },
            "delete": {
                "operationId": "detachDomain",
                "parameters": _DOMAIN_OPS,
                "responses": {"204": {"description": "Detached"}, **_errors(400, 401, 404, 503)},
            },
        },
        "/api/v1/domains/{domain}/verify": {
            "post": {
                "operationId": "verifyDomain",
                "summary": "Check DNS now",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(_ref("Verification"), "The check's findings"),
                    **_errors(400, 401, 404, 409, 429, 503),
                },
            },
        },
        "/api/v1/domains/{domain}/events": {
            "get": {
                "operationId": "domainEvents",
                "parameters": _DOMAIN_OPS,
                "responses": {
                    "200": _json(_ref("EventList"), "State moves, oldest first"),
                    **_errors(400, 401, 404),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": {"description": "This document"}},
            }
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
