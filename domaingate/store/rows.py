"""Rows into the domain model (`domaingate.models`): the SELECT list of a domain and the readers
of the store's rows, the only place that knows a model's columns."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from domaingate.hostnames import Kind
from domaingate.models import Domain, DomainEvent, Tenant
from domaingate.states import Status
from domaingate.store.abc import Row

_DOMAIN_COLUMNS = tuple(field.name for field in fields(Domain))
_SELECT_ORDER = (*(name for name in _DOMAIN_COLUMNS if name != "tenant"), "tenant")

# SELECT list for `domain()`: every domain column plus the tenant's name.
DOMAIN_SELECT = (
    "SELECT "
    + ", ".join(f"d.{name}" for name in _SELECT_ORDER[:-1])
    + ", t.name AS tenant FROM domains d JOIN tenants t ON t.id = d.tenant_id"
)


def domain(row: Row) -> Domain:
    """A row of DOMAIN_SELECT, read by position: the reconciler reads every live domain each
    certificate scan, where a lookup by name per column was most of the cost."""
    values: dict[str, Any] = dict(zip(_SELECT_ORDER, row, strict=True))
    values["status"] = Status(values["status"])
    values["kind"] = Kind(values["kind"])
    return Domain(**values)


def tenant(row: Row) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def event(row: Row) -> DomainEvent:
    return DomainEvent(
        id=row["id"],
        event_id=row["event_id"],
        domain_id=row["domain_id"],
        type=row["type"],
        from_status=Status(row["from_status"]) if row["from_status"] else None,
        to_status=Status(row["to_status"]),
        reason=row["reason"],
        message=row["message"],
        created_at=row["created_at"],
    )
