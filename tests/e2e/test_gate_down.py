"""Gate down: with the gateway stopped Caddy issues nothing (fail closed); after it restarts the
flow resumes where it was, with no state lost."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from tests.e2e.flows import moves, platform_records, rfc3339
from tests.support.caddy_binaries import CaddyBinary
from tests.support.stack import Stack, StackOptions
from tests.support.tls import cert_names
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    with Stack(StackOptions(zones={"e2e.test": BASE}, caddy=caddy, apps=APPS)) as running:
        yield running


def test_gate_down_fails_closed_then_resumes(stack: Stack) -> None:
    token = stack.tenant("acme", "app1")
    assert stack.attach(token, "shop.e2e.test", "app1").status == 201

    # SIGTERM stops the gateway gracefully.
    assert stack.domaingate.gateway.stop() == 0
    assert stack.domaingate.ask("shop.e2e.test") is None

    with stack.no_new_orders():
        # The reconciler works on alone: the record appears, the domain is verified.
        stack.set_zone("e2e.test", BASE + "shop CNAME app1.apps\n")
        row = wait_until(
            lambda: (
                (r := stack.domaingate.db_row("shop.e2e.test"))
                and (r if r["status"] == "verified" else None)
            ),
            timeout=30,
            what="the reconciler to verify the domain with the gateway down",
        )
        assert row["status"] == "verified"
        # But Caddy cannot reach the gate: it denies, orders nothing.
        for _ in range(3):
            with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
                stack.handshake("shop.e2e.test")

    stack.domaingate.start_gateway()
    assert stack.domain(token, "shop.e2e.test")["status"] == "verified"
    orders = stack.pebble.orders()
    fetched = stack.https("shop.e2e.test", "/")
    assert stack.pebble.orders() == orders + 1
    assert cert_names(fetched.certificate) == ["shop.e2e.test"]
    assert fetched.json()["upstream"] == "app1"
    active = stack.wait_status(token, "shop.e2e.test", "active", timeout=20)
    assert rfc3339(active["cert_expires_at"]) == fetched.certificate.not_valid_after_utc
    assert moves(stack, token, "shop.e2e.test") == ["domain.verified", "domain.active"]
