"""Removal: refused at once although Caddy still holds the certificate; not served after a restart;
its files gone from Caddy's storage."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate, platform_records
from tests.support.caddy_binaries import CaddyBinary
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    with Stack(StackOptions(zones={"e2e.test": BASE}, caddy=caddy, apps=APPS)) as running:
        yield running


def test_removed_domain_is_refused_at_once_and_after_restart(stack: Stack) -> None:
    token = stack.tenant("acme", "app1")
    fetched, _ = activate(
        stack,
        token,
        "shop.e2e.test",
        "app1",
        zone="e2e.test",
        records=BASE + "shop CNAME app1.apps\n",
    )
    assert fetched.json()["upstream"] == "app1"
    assert len(stack.caddy.cert_dirs("shop.e2e.test")) == 1

    deleted = stack.domaingate.api("DELETE", "/domains/shop.e2e.test", token=token)
    assert deleted.status == 204

    with stack.no_new_orders():
        # At once: the handshake still succeeds from the certificate in Caddy's memory (no new
        # ask), but forward_auth gets 404 from /route and the upstream is never reached.
        refused = stack.https("shop.e2e.test", "/")
        assert refused.certificate.serial_number == fetched.certificate.serial_number
        assert refused.status == 404
        assert b"upstream" not in refused.body
        assert stack.domaingate.ask("shop.e2e.test") == 403
        assert stack.domaingate.api("GET", "/domains/shop.e2e.test", token=token).status == 404

        # The reconciler deletes its certificate directory from Caddy's storage.
        wait_until(
            lambda: stack.caddy.cert_dirs("shop.e2e.test") == [],
            timeout=30,
            what="the certificate files to be deleted",
        )

        # After a restart Caddy has nothing to load: it asks, the gate refuses, the handshake
        # fails, and no certificate is ordered.
        stack.caddy.restart()
        for _ in range(3):
            with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
                stack.handshake("shop.e2e.test")
    assert stack.caddy.cert_dirs("shop.e2e.test") == []
