"""DNS moves away after activation: `failed` with `dns_moved` after the grace time, not before;
requests refused; the renewal is denied, so Caddy stops serving the certificate: 2.6 once it
expires, 2.11 at the first denied renewal."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate, platform_records
from tests.support.caddy_binaries import CaddyBinary
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)
VALIDITY = 30  # seconds: Pebble's certificateValidityPeriod
GRACE = 5  # seconds: DRIFT_GRACE


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    options = StackOptions(
        zones={"e2e.test": BASE},
        caddy=caddy,
        apps=APPS,
        cert_validity=VALIDITY,
        env={
            "DRIFT_GRACE": str(GRACE),
            "DRIFT_INTERVAL": "1",
            # Keep the short certificate `active` (not `expiring`) for this test.
            "EXPIRING_DAYS": str(1 / 86400),
        },
    )
    with Stack(options) as running:
        yield running


def test_dns_moved_away_fails_after_grace_and_renewal_is_denied(stack: Stack) -> None:
    token = stack.tenant("acme", "app1")
    fetched, _ = activate(
        stack,
        token,
        "shop.e2e.test",
        "app1",
        zone="e2e.test",
        records=BASE + "shop CNAME app1.apps\n",
    )
    first = fetched.certificate

    # The tenant moves the name to another provider.
    stack.set_zone("e2e.test", BASE + "shop A 192.0.2.10\n")
    moved_at = time.time()
    # Within the grace time it stays live.
    while time.time() < moved_at + GRACE - 1.5:
        assert stack.domain(token, "shop.e2e.test")["status"] == "active"
        time.sleep(0.5)
    failed = stack.wait_status(token, "shop.e2e.test", "failed", timeout=GRACE + 15)
    assert time.time() >= moved_at + GRACE
    assert failed["last_check_error"]["code"] == "dns_moved"

    with stack.no_new_orders():
        assert stack.domaingate.ask("shop.e2e.test") == 403
        # Requests are refused at once by forward_auth, although the handshake still works.
        refused = stack.https("shop.e2e.test", "/")
        assert refused.status == 404

        # Every renewal attempt is denied by the gate. 2.6 keeps serving the old certificate
        # until it ends, then nothing. 2.11 drops it from memory at the first denied renewal: a
        # handshake served a certificate it counts as due (any of Pebble's 30 s ones: under
        # 50 min left is "expiring imminently", see test_renewal) makes it ask, the gate denies,
        # and the next handshake asks again and fails, long before the certificate expires.
        # The TLS alert differs too: 2.11 fails the handshake on the denied ask (internal_error,
        # as for any name the gate denies); 2.6 loads the expired certificate from storage again,
        # its renewal is denied, and the handshake ends in handshake_failure.
        not_after = first.not_valid_after_utc.timestamp()
        alert = {"2.6": "HANDSHAKE_FAILURE", "2.11": "INTERNAL_ERROR"}[stack.version]

        def handshake_fails() -> bool:
            try:
                current = stack.handshake("shop.e2e.test")
            except ssl.SSLError as error:
                assert alert in str(error), error
                return True
            assert current.serial_number == first.serial_number
            return False

        wait_until(
            handshake_fails,
            timeout=max(0.0, not_after - time.time()) + 10,
            interval=1,
            what="the handshake to fail",
        )
        served_until_expiry = {"2.6": True, "2.11": False}[stack.version]
        assert (time.time() >= not_after - 1) == served_until_expiry, (time.time(), not_after)
    # Caddy keeps the expired files: the domain is failed, not removed.
    assert stack.domain(token, "shop.e2e.test")["status"] == "failed"
