"""A gateway restart under a steady handshake load loses no handshake of a live domain.

On both versions a certificate in Caddy's memory is served without asking the gate, so the gateway
restarting alone costs nothing: that is the first test, and it is the easy case. The harder one is
what from Caddy 2.7 on puts the gate on the live path: Caddy itself restarting (a reboot, an
upgrade) while the gateway restarts. 2.11 then asks the gate before it loads each certificate from
storage, so Caddy must not take handshakes before the gate can answer. systemd keeps that order
(systemd/caddy.service.d/domaingate.conf: After= the gateway, which is Type=notify and reports
READY=1 once its allowlist is loaded); the second test emulates it, starting Caddy only when READY=1
has reached a notify socket, and shows no handshake lost once Caddy listens again. The attempts made
while Caddy itself was stopped are not judged: nothing can serve them. The third test shows what
the ordering is for: Caddy started before the gate, where 2.11 fails the live domains' handshakes
and 2.6 still serves them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import pytest

from tests.e2e.flows import activate_all, platform_records
from tests.support.caddy_binaries import CaddyBinary
from tests.support.load import Attempt, HandshakeLoad
from tests.support.stack import Stack, StackOptions
from tests.support.systemd import NOTIFY_SOCKET, NotifySocket

pytestmark = pytest.mark.e2e

APPS = ("app1",)
NAMES = ("shop.e2e.test", "blog.e2e.test", "docs.e2e.test")
RECORDS = platform_records(APPS) + "".join(
    f"{name.split('.')[0]} CNAME app1.apps\n" for name in NAMES
)
# Handshakes each phase must see at least, so that a window is really judged under load.
PER_PHASE = 20


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    options = StackOptions(zones={"e2e.test": platform_records(APPS)}, caddy=caddy, apps=APPS)
    with Stack(options) as running:
        yield running


@pytest.fixture(scope="module")
def live(stack: Stack) -> dict[str, int]:
    """The live domains, active with a certificate each: name → the served serial number."""
    token = stack.tenant("acme", *APPS)
    apps = dict.fromkeys(NAMES, "app1")
    fetched = activate_all(stack, token, apps, zone="e2e.test", records=RECORDS)
    return {name: fetched[name].certificate.serial_number for name in NAMES}


def failures(attempts: list[Attempt], live: dict[str, int]) -> list[Attempt]:
    """The attempts that failed or got another certificate than the live one."""
    return [a for a in attempts if a.error is not None or a.serial != live[a.name]]


def test_gateway_restart_alone_loses_no_handshake(stack: Stack, live: dict[str, int]) -> None:
    with stack.no_new_orders(), HandshakeLoad(stack.https_port, NAMES) as load:
        load.wait_for(PER_PHASE, after=time.monotonic())
        down = time.monotonic()
        assert stack.domaingate.gateway.stop() == 0
        load.wait_for(PER_PHASE, after=time.monotonic())
        stack.domaingate.start_gateway()
        up = time.monotonic()
        load.wait_for(PER_PHASE, after=up)
    attempts = load.attempts
    assert failures(attempts, live) == []
    assert sum(1 for a in attempts if a.within(down, up)) >= PER_PHASE
    # Served from Caddy's memory on both versions: the restarted gate was not even asked.
    assert stack.domaingate.asks("allowed") == 0


def test_caddy_and_gateway_restart_in_unit_order_lose_no_handshake(
    stack: Stack, live: dict[str, int]
) -> None:
    gateway = stack.domaingate.gateway
    with stack.no_new_orders(), HandshakeLoad(stack.https_port, NAMES) as load:
        load.wait_for(PER_PHASE, after=time.monotonic())
        gate_down = time.monotonic()
        assert gateway.stop() == 0
        load.wait_for(PER_PHASE, after=time.monotonic())
        caddy_down = time.monotonic()
        stack.caddy.stop()
        # systemd starts the gateway (Type=notify) and Caddy only once READY=1 has arrived.
        with NotifySocket(stack.workdir / "notify.sock") as notify:
            gateway.env[NOTIFY_SOCKET] = str(notify.path)
            try:
                gateway.start()
                notify.wait_ready(timeout=30, alive=gateway.check_alive)
            finally:
                del gateway.env[NOTIFY_SOCKET]
        stack.caddy.start()
        caddy_up = time.monotonic()
        load.wait_for(2 * PER_PHASE, after=caddy_up)
    judged = [a for a in load.attempts if not a.overlaps(caddy_down, caddy_up)]
    assert failures(judged, live) == []
    assert sum(1 for a in judged if a.within(gate_down, caddy_down)) >= PER_PHASE
    assert sum(1 for a in judged if a.started >= caddy_up) >= 2 * PER_PHASE
    # What the ordering is for: 2.11 asks the gate before it loads each live certificate from
    # storage; 2.6 loads them without asking.
    asked = stack.domaingate.asks("allowed")
    expected = {"2.6": 0, "2.11": len(NAMES)}[stack.version]
    assert asked == expected


def test_caddy_started_before_the_gate(stack: Stack, live: dict[str, int]) -> None:
    """Without the ordering: Caddy restarted while the gateway is down."""
    with stack.no_new_orders():
        assert stack.domaingate.gateway.stop() == 0
        stack.caddy.restart()
        outcome: dict[str, object] = {}
        for name in NAMES:
            try:
                outcome[name] = stack.handshake(name).serial_number
            except ssl.SSLError as error:
                outcome[name] = "internal_error" if "INTERNAL_ERROR" in str(error) else error
        expected = {
            # Loaded from storage without asking: served although nothing can answer the ask.
            "2.6": live,
            # Asks first, cannot reach the gate, fails the handshake like an unknown name's.
            "2.11": dict.fromkeys(NAMES, "internal_error"),
        }[stack.version]
        assert outcome == expected
        # Denials are not cached: once the gate is up, the next handshakes are served.
        stack.domaingate.start_gateway()
        assert {name: stack.handshake(name).serial_number for name in NAMES} == live
