"""The component schemas of the OpenAPI document: every object the tenant API sends or takes.

Objects the API sends are closed (`additionalProperties: false`): a field in a reply that is not
listed here breaks the document, so a new field is added here too.
"""

from __future__ import annotations

from typing import Any

from domaingate.apps import MAX_UPSTREAM
from domaingate.errors import error_codes
from domaingate.hostnames import LDH_LABEL
from domaingate.states import Status
from domaingate.store.runs import ERROR_MAX, JOBS

TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {**TIME, "nullable": True}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def closed_object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object: the API sends these fields, every one unless `optional`, and no others."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


APP = {"type": "string", "pattern": f"^{LDH_LABEL}$"}
# The API never shows a removed domain.
LIVE_STATUS = {"type": "string", "enum": [s.value for s in Status if s is not Status.REMOVED]}

SCHEMAS: dict[str, Any] = {
    "Error": closed_object(
        {
            "error": closed_object(
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
    "Record": closed_object(
        {
            "type": {"type": "string", "enum": ["CNAME", "TXT", "A", "AAAA"]},
            "name": {"type": "string"},
            "value": {"type": "string"},
        }
    ),
    "CheckError": {
        **closed_object({"code": {"type": "string"}, "message": {"type": "string"}}),
        "nullable": True,
    },
    "Domain": closed_object(
        {
            "domain": {"type": "string"},
            "app": {"type": "string"},
            "tenant": {"type": "string"},
            "status": LIVE_STATUS,
            "kind": {"type": "string", "enum": ["subdomain", "apex"]},
            "method": {"type": "string", "enum": ["cname", "txt"]},
            "txt_record": closed_object({"name": {"type": "string"}, "value": {"type": "string"}}),
            "instructions": closed_object(
                {
                    "records": {"type": "array", "items": ref("Record")},
                    "notes": {"type": "array", "items": {"type": "string"}},
                }
            ),
            "created_at": TIME,
            "updated_at": TIME,
            "verified_at": NULLABLE_TIME,
            "last_checked_at": NULLABLE_TIME,
            "next_check_at": NULLABLE_TIME,
            "last_check_error": ref("CheckError"),
            "failure_count": {"type": "integer", "minimum": 0},
            "dns_provider": {"type": "string", "nullable": True},
            "cert_expires_at": NULLABLE_TIME,
            "cert_issuer": {"type": "string", "nullable": True},
            "cert_renewal_due_at": {
                **NULLABLE_TIME,
                "description": "When the certificate's renewal becomes overdue: past it an active "
                "domain turns expiring (less than 1/6 of the certificate's lifetime left, the end "
                "of the renewal window its CA suggests, or EXPIRING_DAYS before its end)",
            },
            "cert_edges": {
                "type": "array",
                "items": {"type": "string"},
                "description": "With the admin token only: the edges (EDGE_NAME) whose "
                "certificate storage holds the domain's certificate, as their reconcilers last "
                "reported",
            },
            "now": TIME,
        },
        optional=("cert_edges",),
    ),
    "DomainList": closed_object(
        {
            "domains": {"type": "array", "items": ref("Domain")},
            "next_cursor": {"type": "string", "nullable": True},
            "now": TIME,
        }
    ),
    "Verification": closed_object(
        {
            "verified": {"type": "boolean"},
            "status": LIVE_STATUS,
            "checks": {
                "type": "array",
                "items": closed_object(
                    {
                        "check": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "code": {"type": "string", "nullable": True},
                        "message": {"type": "string"},
                    }
                ),
            },
            "last_check_error": ref("CheckError"),
            "last_checked_at": NULLABLE_TIME,
            "now": TIME,
        }
    ),
    "EventList": closed_object(
        {
            "domain": {"type": "string"},
            "events": {
                "type": "array",
                "items": closed_object(
                    {
                        "id": {"type": "string"},
                        "type": {"type": "string"},
                        "from_status": {"type": "string", "nullable": True},
                        "to_status": {"type": "string"},
                        "reason": {"type": "string", "nullable": True},
                        "message": {"type": "string", "nullable": True},
                        "created_at": TIME,
                    }
                ),
            },
            "now": TIME,
        }
    ),
    "Account": closed_object(
        {
            "admin": {"type": "boolean"},
            "tenant": {"type": "string", "nullable": True},
            "limits": closed_object(
                {
                    "max_domains_per_tenant": {"type": "integer", "minimum": 1},
                    "max_domains_per_app": {"type": "integer", "minimum": 1, "nullable": True},
                }
            ),
            "usage": {
                **closed_object(
                    {
                        "domains": {"type": "integer", "minimum": 0},
                        "apps": {
                            "type": "array",
                            "items": closed_object(
                                {"app": {"type": "string"}, "domains": {"type": "integer"}}
                            ),
                        },
                    }
                ),
                "nullable": True,
            },
            "now": TIME,
        }
    ),
    "Status": closed_object(
        {
            "reconciler": closed_object(
                {
                    "lease_held": {"type": "boolean"},
                    "holder": {"type": "string", "nullable": True},
                    "lease_expires_at": NULLABLE_TIME,
                    "lease_token": {"type": "integer", "minimum": 1, "nullable": True},
                    "last_check_at": NULLABLE_TIME,
                    "checks_overdue": {"type": "integer", "minimum": 0},
                }
            ),
            "outbox": closed_object(
                {"backlog": {"type": "integer", "minimum": 0}, "oldest_at": NULLABLE_TIME}
            ),
            "counts": closed_object(
                {name: {"type": "integer", "minimum": 0} for name in LIVE_STATUS["enum"]}
            ),
            "runs": {
                "type": "array",
                "description": "each reconciler job's last recorded run, by the lease holder",
                "items": closed_object(
                    {
                        "job": {"type": "string", "enum": list(JOBS)},
                        "last_run_at": NULLABLE_TIME,
                        "last_ok_at": NULLABLE_TIME,
                        "last_error": {
                            "type": "string",
                            "nullable": True,
                            "maxLength": ERROR_MAX,
                            "description": "the last run's error; null when it succeeded",
                        },
                        "late": {
                            "type": "boolean",
                            "description": "the last run is older than a few times its interval",
                        },
                    }
                ),
            },
            "now": TIME,
        }
    ),
    "App": closed_object(
        {
            "app": APP,
            "upstream": {"type": "string", "nullable": True},
            "tenant": {"type": "string"},
            "now": TIME,
        },
        optional=("tenant", "now"),
    ),
    "AppList": closed_object({"apps": {"type": "array", "items": ref("App")}, "now": TIME}),
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
            "app": APP,
        },
    },
}
