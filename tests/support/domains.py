"""A Domain row built in memory, for the pure tests of the core (no database)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from domaingate.hostnames import Kind
from domaingate.models import Domain
from domaingate.states import Status


def make_domain(*, now: float, **fields: Any) -> Domain:
    """A pending subdomain `shop.acme.test` of tenant acme's app `shop`, attached at `now`, with
    `fields` replaced."""
    base = Domain(
        id=1,
        hostname="shop.acme.test",
        tenant_id=1,
        tenant="acme",
        app="shop",
        status=Status.PENDING,
        kind=Kind.SUBDOMAIN,
        method="cname",
        txt_token="dg_" + "0" * 64,
        created_at=now,
        updated_at=now,
        verified_at=None,
        last_checked_at=None,
        next_check_at=None,
        last_check_code=None,
        last_check_message=None,
        failure_count=0,
        failing_since=None,
        dns_provider=None,
        cert_expires_at=None,
        cert_issuer=None,
        removed_at=None,
    )
    return replace(base, **fields)
