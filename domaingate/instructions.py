"""What a domain's DNS must hold: the records a tenant is told to publish, and the same facts as
the expectation the DNS checker tests against. One source, so the two can never disagree."""

from __future__ import annotations

from typing import Any

from domaingate.dns.checker import Expectation
from domaingate.hostnames import Kind
from domaingate.settings import Settings
from domaingate.store.models import Domain


def expectation_for(domain: Domain, settings: Settings) -> Expectation:
    return Expectation(
        hostname=domain.hostname,
        kind=domain.kind,
        cname_target=settings.cname_target(domain.app),
        txt_name=txt_name(domain, settings),
        txt_value=domain.txt_token,
        # The method was fixed at attach time (apex, or REQUIRE_TXT then): keep asking for what
        # the tenant was told to publish.
        require_txt=domain.method == "txt",
        edge_ipv4=settings.edge_ipv4,
        edge_ipv6=settings.edge_ipv6,
    )


def txt_name(domain: Domain, settings: Settings) -> str:
    return f"{settings.txt_prefix}.{domain.hostname}"


def instructions(domain: Domain, settings: Settings) -> dict[str, Any]:
    """`{records: [{type, name, value}], notes}` for the API's domain object."""
    records: list[dict[str, str]] = []
    notes: list[str] = []
    if domain.method == "txt":
        records.append(
            {"type": "TXT", "name": txt_name(domain, settings), "value": domain.txt_token}
        )
    if domain.kind is Kind.APEX:
        records += [
            {"type": "A", "name": domain.hostname, "value": ip} for ip in settings.edge_ipv4
        ]
        records += [
            {"type": "AAAA", "name": domain.hostname, "value": ip} for ip in settings.edge_ipv6
        ]
        notes.append(
            f"{domain.hostname} is a zone apex, where DNS allows no CNAME: publish the TXT record "
            "that proves ownership and point A"
            + ("/AAAA" if settings.edge_ipv6 else "")
            + " records at the platform's edge addresses. Remove any other A/AAAA records."
        )
        if not settings.edge_ipv4 and not settings.edge_ipv6:
            notes.append(
                "The platform has not published edge addresses yet (EDGE_IPV4/EDGE_IPV6); "
                "ask the platform operator for them."
            )
    else:
        records.insert(
            0,
            {
                "type": "CNAME",
                "name": domain.hostname,
                "value": settings.cname_target(domain.app),
            },
        )
        notes.append(
            f"Point {domain.hostname} at {settings.cname_target(domain.app)} with a CNAME and "
            "remove any A/AAAA records for that name. If your DNS provider proxies traffic "
            "(Cloudflare's orange cloud), set the record to 'DNS only'."
        )
    notes.append(
        "DNS changes can take a while to reach every resolver; the domain is checked again "
        "automatically, or at once through POST /api/v1/domains/{domain}/verify."
    )
    return {"records": records, "notes": notes}
