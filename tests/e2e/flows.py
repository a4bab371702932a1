"""Flows the end-to-end modules share: the platform's zone records, a domain's moves, activation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tests.support.net import HOST
from tests.support.stack import Stack
from tests.support.tls import Fetched


def platform_records(apps: tuple[str, ...], zone: str = "e2e.test") -> str:
    """Zone-file lines for the platform's CNAME targets `{app}.apps.<zone>` → 127.0.0.1.

    The targets live in the same zone as the tenants' names on purpose: neither knot nor Pebble's
    resolver follows a CNAME into another zone (see notes/local-stack.md)."""
    del zone
    return "".join(f"{app}.apps A {HOST}\n" for app in apps)


SPEC_EVENTS = frozenset(
    {"domain.verified", "domain.active", "domain.expiring", "domain.failed", "domain.removed"}
)


def moves(stack: Stack, token: str, domain: str) -> list[str]:
    """The domain's state-move events (the spec's five types), oldest first."""
    response = stack.domaingate.api("GET", f"/domains/{domain}/events", token=token)
    assert response.status == 200, response.body
    return [e["type"] for e in response.body["events"] if e["type"] in SPEC_EVENTS]


def rfc3339(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def activate(
    stack: Stack, token: str, domain: str, app: str, *, zone: str, records: str
) -> tuple[Fetched, dict[str, Any]]:
    """Attach `domain`, publish `records` as `zone`, wait for `verified`, fetch it through Caddy
    (Pebble issues), wait for `active`. Returns the first fetch and the active domain object."""
    attached = stack.attach(token, domain, app)
    assert attached.status == 201, attached.body
    stack.set_zone(zone, records)
    stack.wait_status(token, domain, "verified", timeout=30)
    fetched = stack.https(domain, "/")
    assert fetched.status == 200, fetched.body
    active = stack.wait_status(token, domain, "active", timeout=30)
    assert rfc3339(active["cert_expires_at"]) == fetched.certificate.not_valid_after_utc
    return fetched, active


def activate_all(
    stack: Stack, token: str, apps: Mapping[str, str], *, zone: str, records: str
) -> dict[str, Fetched]:
    """`activate` for several domains ({domain: app}) at once: one zone change, the waits
    overlapped. Returns each domain's first fetch."""
    for domain, app in apps.items():
        attached = stack.attach(token, domain, app)
        assert attached.status == 201, attached.body
    stack.set_zone(zone, records)
    for domain in apps:
        stack.wait_status(token, domain, "verified", timeout=30)
    fetched = {domain: stack.https(domain, "/") for domain in apps}
    for domain, app in apps.items():
        assert fetched[domain].status == 200, fetched[domain].body
        assert fetched[domain].json()["upstream"] == app
        active = stack.wait_status(token, domain, "active", timeout=30)
        assert rfc3339(active["cert_expires_at"]) == fetched[domain].certificate.not_valid_after_utc
    return fetched
