"""Value objects read from the store: tenants, domains and domain events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domaingate.hostnames import Kind
from domaingate.states import Status
from domaingate.store.abc import Row


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: int
    name: str
    created_at: float
    revoked_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Tenant:
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    id: int
    hostname: str
    tenant_id: int
    tenant: str
    app: str
    status: Status
    kind: Kind
    method: str
    txt_token: str
    created_at: float
    updated_at: float
    verified_at: float | None
    last_checked_at: float | None
    next_check_at: float | None
    last_check_code: str | None
    last_check_message: str | None
    failure_count: int
    failing_since: float | None
    dns_provider: str | None
    cert_expires_at: float | None
    cert_issuer: str | None
    removed_at: float | None
    # When the certificate's renewal becomes overdue (domaingate.renewal); last, with a default,
    # so values built in code without it stay valid.
    cert_renewal_due_at: float | None = None

    def __post_init__(self) -> None:
        if self.method not in {"cname", "txt"}:
            raise ValueError(f"unknown verification method {self.method!r}")

    @classmethod
    def from_row(cls, row: Row) -> Domain:
        """A row of DOMAIN_SELECT, read by position: the reconciler reads every live domain
        each certificate scan, where a lookup by name per column was most of the cost."""
        values: dict[str, Any] = dict(zip(_SELECT_ORDER, row, strict=True))
        values["status"] = Status(values["status"])
        values["kind"] = Kind(values["kind"])
        return cls(**values)


_DOMAIN_COLUMNS = tuple(Domain.__dataclass_fields__)
_SELECT_ORDER = (*(name for name in _DOMAIN_COLUMNS if name != "tenant"), "tenant")

# SELECT list for Domain.from_row: every domain column plus the tenant's name.
DOMAIN_SELECT = (
    "SELECT "
    + ", ".join(f"d.{name}" for name in _SELECT_ORDER[:-1])
    + ", t.name AS tenant FROM domains d JOIN tenants t ON t.id = d.tenant_id"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    id: int
    event_id: str
    domain_id: int
    type: str
    from_status: Status | None
    to_status: Status
    reason: str | None
    message: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> DomainEvent:
        return cls(
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
