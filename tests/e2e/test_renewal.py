"""Expiry and renewal with Pebble's short certificates: active → expiring → (Caddy renews through
the gate) → active, with the new certificate's real expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate, moves, platform_records, rfc3339
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)
VALIDITY = 45  # seconds: Pebble's certificateValidityPeriod
EXPIRING = 25  # seconds: the renewal window that moves active → expiring (EXPIRING_DAYS)
# Caddy renews an on-demand certificate on a handshake in the last third of its life.
CADDY_RENEWS_WITHIN = VALIDITY / 3


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    options = StackOptions(
        zones={"e2e.test": BASE},
        apps=APPS,
        cert_validity=VALIDITY,
        env={"EXPIRING_DAYS": str(EXPIRING / 86400)},
    )
    with Stack(options) as running:
        yield running


def test_expiring_then_renewed_through_the_gate(stack: Stack) -> None:
    token = stack.tenant("acme", "app1")
    fetched, active = activate(
        stack,
        token,
        "shop.e2e.test",
        "app1",
        zone="e2e.test",
        records=BASE + "shop CNAME app1.apps\n",
    )
    first = fetched.certificate
    not_after = first.not_valid_after_utc.timestamp()
    assert not_after - time.time() > EXPIRING, "certificate too short for the test"

    expiring = stack.wait_status(token, "shop.e2e.test", "expiring", timeout=VALIDITY)
    # Not before its time (1 s of scan interval and clock slack allowed).
    assert time.time() >= not_after - EXPIRING - 1.5
    assert rfc3339(expiring["cert_expires_at"]) == first.not_valid_after_utc
    # Still served, and still allowed by the gate: that is what lets Caddy renew.
    assert stack.domaingate.ask("shop.e2e.test") == 200

    # Enter Caddy's renewal window, then let a handshake trigger the renewal.
    time.sleep(max(0.0, not_after - CADDY_RENEWS_WITHIN + 1 - time.time()))
    orders = stack.pebble.orders()

    def renewed() -> object:
        current = stack.https("shop.e2e.test", "/")
        assert current.status == 200
        same = current.certificate.serial_number == first.serial_number
        return None if same else current

    second = wait_until(renewed, timeout=15, interval=1, what="Caddy to renew the certificate")
    assert isinstance(second, type(fetched))
    assert stack.pebble.orders() == orders + 1
    assert second.certificate.not_valid_after_utc > first.not_valid_after_utc

    def active_again() -> dict[str, object] | None:
        current = stack.domain(token, "shop.e2e.test")
        moved = (
            current["status"] == "active"
            and rfc3339(current["cert_expires_at"]) == second.certificate.not_valid_after_utc
        )
        return current if moved else None

    wait_until(active_again, timeout=15, what="active with the renewed certificate's expiry")
    del active

    assert moves(stack, token, "shop.e2e.test") == [
        "domain.verified",
        "domain.active",
        "domain.expiring",
        "domain.active",
    ]
