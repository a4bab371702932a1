"""DNS moves away after activation: `failed` with `dns_moved` after the grace time, not before;
requests refused; the renewal is denied, so the certificate dies with its lifetime."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate, platform_records
from tests.support.stack import Stack, StackOptions
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1",)
BASE = platform_records(APPS)
VALIDITY = 30  # seconds: Pebble's certificateValidityPeriod
GRACE = 5  # seconds: DRIFT_GRACE


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    options = StackOptions(
        zones={"e2e.test": BASE},
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

        # Through Caddy's renewal window and past the expiry: every renewal attempt is denied
        # by the gate; Caddy serves the old certificate until it ends, then nothing.
        not_after = first.not_valid_after_utc.timestamp()

        def handshake_fails() -> bool:
            try:
                served = stack.handshake("shop.e2e.test")
            except ssl.SSLError:
                return True
            assert served.serial_number == first.serial_number
            return False

        wait_until(
            handshake_fails,
            timeout=max(0.0, not_after - time.time()) + 10,
            interval=1,
            what="the handshake to fail once the certificate has expired",
        )
        assert time.time() >= not_after - 1
    # Caddy keeps the expired files: the domain is failed, not removed.
    assert stack.domain(token, "shop.e2e.test")["status"] == "failed"
