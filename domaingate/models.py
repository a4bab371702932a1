"""The domain model: tenants, their domains and the domains' events, as the store reads them
and the planners, the API and the command line use them."""

from __future__ import annotations

from dataclasses import dataclass

from domaingate.hostnames import Kind
from domaingate.states import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: int
    name: str
    created_at: float
    revoked_at: float | None


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
    # When the certificate's renewal becomes overdue (domaingate.lifecycle.renewal); last, with
    # a default, so values built in code without it stay valid.
    cert_renewal_due_at: float | None = None

    def __post_init__(self) -> None:
        if self.method not in {"cname", "txt"}:
            raise ValueError(f"unknown verification method {self.method!r}")


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
