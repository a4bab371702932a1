"""What a domain's DNS must hold: the records a tenant is told to publish, and the same facts as
the expectation the DNS checker tests against. One source, so the two can never disagree."""

from __future__ import annotations

from typing import Any

from domaingate.dns.checker import Expectation
from domaingate.hostnames import Hostname, Kind
from domaingate.models import Domain
from domaingate.settings import Settings


def expectation_for(domain: Domain, settings: Settings) -> Expectation:
    return _expectation(
        domain.hostname,
        domain.kind,
        domain.app,
        settings,
        txt_value=domain.txt_token,
        # The method was fixed at attach time (apex, or REQUIRE_TXT then): keep asking for what
        # the tenant was told to publish.
        require_txt=domain.method == "txt",
    )


def expectation_unattached(host: Hostname, app: str, settings: Settings) -> Expectation:
    """What a name not attached yet must show for `app`: the routing records only, since the
    ownership token (the TXT record's value) exists only once the name is attached."""
    return _expectation(host.name, host.kind, app, settings, txt_value="", require_txt=False)


def _expectation(
    hostname: str, kind: Kind, app: str, settings: Settings, *, txt_value: str, require_txt: bool
) -> Expectation:
    return Expectation(
        hostname=hostname,
        kind=kind,
        cname_target=settings.cname_target(app),
        txt_name=txt_record_name(hostname, settings),
        txt_value=txt_value,
        require_txt=require_txt,
        edge_ipv4=settings.edge_ipv4,
        edge_ipv6=settings.edge_ipv6,
    )


def txt_name(domain: Domain, settings: Settings) -> str:
    return txt_record_name(domain.hostname, settings)


def txt_record_name(hostname: str, settings: Settings) -> str:
    """Where the ownership TXT record of `hostname` lives."""
    return f"{settings.txt_prefix}.{hostname}"


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
