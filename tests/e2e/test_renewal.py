"""Expiry and renewal with Pebble's short certificates: active → expiring → (Caddy renews through
the gate) → active, with the new certificate's real expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate, moves, platform_records, rfc3339
from tests.support.caddy_binaries import CaddyBinary
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)
VALIDITY = 45  # seconds: Pebble's certificateValidityPeriod
EXPIRING = 25  # seconds: the renewal window that moves active → expiring (EXPIRING_DAYS)
# Caddy renews an on-demand certificate on a handshake in the last third of its life.
CADDY_RENEWS_WITHIN = VALIDITY / 3
# What both versions log once a renewed certificate has replaced the old one in memory.
CACHE_SWAP = "replaced certificate in cache"


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    options = StackOptions(
        zones={"e2e.test": BASE},
        caddy=caddy,
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

    # Enter Caddy's renewal window, then let one handshake trigger the renewal (Caddy renews in
    # the background). No other handshake until the renewed certificate is in Caddy's cache.
    time.sleep(max(0.0, not_after - CADDY_RENEWS_WITHIN + 1 - time.time()))
    orders, issued = stack.pebble.orders(), stack.pebble.issued()
    swaps = stack.caddy.logged(CACHE_SWAP)
    assert stack.https("shop.e2e.test", "/").status == 200
    wait_until(
        lambda: stack.caddy.logged(CACHE_SWAP) > swaps,
        timeout=15,
        what="Caddy to renew the certificate and put the new one in its cache",
    )
    assert (stack.pebble.orders(), stack.pebble.issued()) == (orders + 1, issued + 1)
    second = stack.https("shop.e2e.test", "/")
    assert second.status == 200
    assert second.certificate.serial_number != first.serial_number
    assert second.certificate.not_valid_after_utc > first.not_valid_after_utc

    # That handshake, served the renewed certificate, renews it again on 2.11 and not on 2.6.
    # certmagic (2.7+) counts a certificate with under 5 renewal-check intervals left (Caddy's
    # renew_interval, 10 min: 50 min) as "expiring imminently" and renews it on the next
    # handshake, whatever its lifetime: every one of Pebble's 45 s certificates is. Real
    # certificates (6 days and up) enter that window only at their very end.
    renewals = {"2.6": 1, "2.11": 2}[stack.version]
    wait_until(
        lambda: stack.caddy.logged(CACHE_SWAP) >= swaps + renewals,
        timeout=15,
        what=f"{renewals} renewal(s) in all",
    )
    time.sleep(1)  # a further renewal, if any, would reach Pebble by now
    assert (stack.pebble.orders(), stack.pebble.issued()) == (
        orders + renewals,
        issued + renewals,
    )
    assert stack.caddy.logged(CACHE_SWAP) == swaps + renewals
    latest = stack.caddy.stored_certificate("shop.e2e.test")
    assert (latest.serial_number == second.certificate.serial_number) == (renewals == 1)

    def active_again() -> dict[str, object] | None:
        current = stack.domain(token, "shop.e2e.test")
        moved = (
            current["status"] == "active"
            and rfc3339(current["cert_expires_at"]) == latest.not_valid_after_utc
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
