"""How domains, checks and events look on the wire: the JSON the API answers, and what
`domaingate domains show` prints.
"""

from __future__ import annotations

from typing import Any

from domaingate.dns.findings import CheckReport
from domaingate.instructions import instructions, txt_name
from domaingate.models import Domain, DomainEvent
from domaingate.settings import Settings
from domaingate.states import ALLOWED
from domaingate.times import rfc3339, rfc3339_or_none


def last_check_error(domain: Domain) -> dict[str, str] | None:
    if domain.last_check_code is None:
        return None
    return {"code": domain.last_check_code, "message": domain.last_check_message or ""}


def domain_json(
    domain: Domain, settings: Settings, now: float, *, cert_edges: list[str] | None = None
) -> dict[str, Any]:
    """The domain object; `cert_edges`, the edges whose storage holds its certificate, only for
    the operator (the admin token, the command line): a tenant's view names no edge."""
    body: dict[str, Any] = {
        "domain": domain.hostname,
        "app": domain.app,
        "tenant": domain.tenant,
        "status": domain.status.value,
        "kind": domain.kind.value,
        "method": domain.method,
        "txt_record": {"name": txt_name(domain, settings), "value": domain.txt_token},
        "instructions": instructions(domain, settings),
        "created_at": rfc3339(domain.created_at),
        "updated_at": rfc3339(domain.updated_at),
        "verified_at": rfc3339_or_none(domain.verified_at),
        "last_checked_at": rfc3339_or_none(domain.last_checked_at),
        "next_check_at": rfc3339_or_none(domain.next_check_at),
        "last_check_error": last_check_error(domain),
        "failure_count": domain.failure_count,
        "dns_provider": domain.dns_provider,
        "cert_expires_at": rfc3339_or_none(domain.cert_expires_at),
        "cert_issuer": domain.cert_issuer,
        "cert_renewal_due_at": rfc3339_or_none(domain.cert_renewal_due_at),
        "now": rfc3339(now),
    }
    if cert_edges is not None:
        body["cert_edges"] = cert_edges
    return body


def verify_json(domain: Domain, report: CheckReport, now: float) -> dict[str, Any]:
    return {
        "verified": domain.status in ALLOWED,
        "status": domain.status.value,
        "checks": [finding.as_dict() for finding in report.findings],
        "last_check_error": last_check_error(domain),
        "last_checked_at": rfc3339_or_none(domain.last_checked_at),
        "now": rfc3339(now),
    }


def event_json(event: DomainEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "type": event.type,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "reason": event.reason,
        "message": event.message,
        "created_at": rfc3339(event.created_at),
    }
