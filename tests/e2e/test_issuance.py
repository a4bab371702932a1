"""Issuance through the gate: a subdomain (CNAME), an apex (TXT + A); squatters get nothing."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.flows import moves, platform_records, rfc3339
from tests.support.caddy_binaries import CaddyBinary
from tests.support.net import HOST
from tests.support.stack import Stack, StackOptions
from tests.support.tls import cert_names
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

APPS = ("app1", "app2", "app3", "app4", "app5")
BASE = platform_records(APPS)
# Records published so far in e2e.test (the tests below add theirs; knot serves the whole zone).
published: list[str] = []


def publish(stack: Stack, *lines: str) -> None:
    published.extend(lines)
    stack.set_zone("e2e.test", BASE + "".join(f"{line}\n" for line in published))


@pytest.fixture(scope="module")
def stack(caddy: CaddyBinary) -> Iterator[Stack]:
    published.clear()
    options = StackOptions(zones={"e2e.test": BASE, "apexco.test": ""}, caddy=caddy, apps=APPS)
    with Stack(options) as running:
        yield running


def wait_checked(stack: Stack, token: str, domain: str) -> dict[str, Any]:
    """The domain object once the reconciler has checked it at least twice by itself."""

    def probe() -> dict[str, Any] | None:
        current = stack.domain(token, domain)
        return current if int(current["failure_count"]) >= 2 else None

    return wait_until(probe, timeout=20, what=f"{domain} to be checked twice")


def test_subdomain_happy_path(stack: Stack) -> None:
    token = stack.tenant("acme", "app1")
    with stack.no_new_orders():
        attached = stack.attach(token, "shop.e2e.test", "app1")
        assert attached.status == 201, attached.body
        assert attached.body["status"] == "pending"
        assert attached.body["kind"] == "subdomain"
        records = attached.body["instructions"]["records"]
        assert {"type": "CNAME", "name": "shop.e2e.test", "value": "app1.apps.e2e.test"} in [
            {k: r[k] for k in ("type", "name", "value")} for r in records
        ]
        # Pending: the handshake fails and Caddy makes no ACME order.
        with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
            stack.handshake("shop.e2e.test")
        checked = wait_checked(stack, token, "shop.e2e.test")
        assert checked["status"] == "pending"
        with pytest.raises(ssl.SSLError):
            stack.handshake("shop.e2e.test")

    publish(stack, "shop CNAME app1.apps")
    verified = stack.wait_status(token, "shop.e2e.test", "verified", timeout=20)
    assert verified["last_check_error"] is None
    assert verified["verified_at"] is not None

    orders = stack.pebble.orders()
    fetched = stack.https("shop.e2e.test", "/hello?x=1")  # verified against Pebble's root
    assert stack.pebble.orders() == orders + 1
    assert cert_names(fetched.certificate) == ["shop.e2e.test"]
    assert "Pebble Intermediate CA" in fetched.certificate.issuer.rfc4514_string()
    assert fetched.status == 200
    assert fetched.json() == {
        "upstream": "app1",
        "host": "shop.e2e.test",
        "path": "/hello?x=1",
        "app_header": "app1",
    }

    active = stack.wait_status(token, "shop.e2e.test", "active", timeout=20)
    assert rfc3339(active["cert_expires_at"]) == fetched.certificate.not_valid_after_utc
    assert "Pebble" in active["cert_issuer"]
    (stored,) = stack.caddy.cert_dirs("shop.e2e.test")
    assert stored.parent.name == stack.pebble.issuer_key

    # Later requests reuse the certificate: no second order.
    with stack.no_new_orders():
        again = stack.https("shop.e2e.test", "/again")
        assert again.certificate.serial_number == fetched.certificate.serial_number
        assert again.json()["path"] == "/again"

    assert moves(stack, token, "shop.e2e.test") == ["domain.verified", "domain.active"]


def test_each_app_is_routed_to_its_own_upstream(stack: Stack) -> None:
    token = stack.tenant("globex", "app2")
    assert stack.attach(token, "blog.e2e.test", "app2").status == 201
    publish(stack, "blog CNAME app2.apps")
    stack.wait_status(token, "blog.e2e.test", "verified", timeout=20)
    fetched = stack.https("blog.e2e.test", "/post/1")
    assert fetched.json()["upstream"] == "app2"
    assert fetched.json()["host"] == "blog.e2e.test"
    # A client cannot pick the upstream with its own headers: Caddy drops them before
    # forward_auth and only the gate's answer reaches reverse_proxy.
    forged = stack.https(
        "blog.e2e.test",
        "/",
        headers={
            "X-Domaingate-Upstream": f"unix/{stack.upstreams.directory}/app1.sock",
            "X-Domaingate-App": "app1",
        },
    )
    assert forged.json()["upstream"] == "app2"
    assert forged.json()["app_header"] == "app2"


def test_http_redirects_to_https(stack: Stack) -> None:
    import http.client

    connection = http.client.HTTPConnection(HOST, stack.http_port, timeout=10)
    try:
        connection.request("GET", "/path?q=1", headers={"Host": "shop.e2e.test"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 308
    # Caddy 2.6 redirects to the default port whatever https_port is (443 in production).
    assert response.getheader("Location") == "https://shop.e2e.test/path?q=1"


def test_apex_with_txt_and_a(stack: Stack) -> None:
    token = stack.tenant("apexco", "app3")
    with stack.no_new_orders():
        attached = stack.attach(token, "apexco.test", "app3")
        assert attached.status == 201, attached.body
        body = attached.body
        assert (body["kind"], body["method"], body["status"]) == ("apex", "txt", "pending")
        txt = body["txt_record"]
        assert txt["name"] == "_domaingate.apexco.test"
        assert txt["value"].startswith("dg_")
        wanted = {(r["type"], r["name"], r["value"]) for r in body["instructions"]["records"]}
        assert ("TXT", "_domaingate.apexco.test", txt["value"]) in wanted
        assert ("A", "apexco.test", HOST) in wanted
        with pytest.raises(ssl.SSLError):
            stack.handshake("apexco.test")
        # The A record alone is not enough: the TXT token proves ownership.
        stack.set_zone("apexco.test", f"@ A {HOST}\n")
        checked = wait_checked(stack, token, "apexco.test")
        assert checked["status"] == "pending"
        error = checked["last_check_error"]
        assert isinstance(error, dict) and error["code"] == "missing_txt"
        with pytest.raises(ssl.SSLError):
            stack.handshake("apexco.test")

    stack.set_zone("apexco.test", f'@ A {HOST}\n_domaingate TXT "{txt["value"]}"\n')
    stack.wait_status(token, "apexco.test", "verified", timeout=20)
    orders = stack.pebble.orders()
    fetched = stack.https("apexco.test", "/")
    assert stack.pebble.orders() == orders + 1
    assert cert_names(fetched.certificate) == ["apexco.test"]
    assert fetched.json()["upstream"] == "app3"
    active = stack.wait_status(token, "apexco.test", "active", timeout=20)
    assert rfc3339(active["cert_expires_at"]) == fetched.certificate.not_valid_after_utc


def test_squatters_get_no_certificate(stack: Stack) -> None:
    owner = stack.tenant("owner", "app4")
    squatter = stack.tenant("squatter", "app5")
    assert stack.attach(owner, "taken.e2e.test", "app4").status == 201
    with stack.no_new_orders():
        # 1. A name nobody attached, although its DNS points at the platform.
        publish(stack, "unclaimed CNAME app4.apps")
        for _ in range(3):
            with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
                stack.handshake("unclaimed.e2e.test")
        assert stack.domaingate.ask("unclaimed.e2e.test") == 403

        # 2. A name attached but never verified: the squatter claims a name whose DNS points
        #    at another app (the owner's), so its check can never pass.
        publish(stack, "victim CNAME app4.apps")
        assert stack.attach(squatter, "victim.e2e.test", "app5").status == 201
        checked = wait_checked(stack, squatter, "victim.e2e.test")
        assert checked["status"] == "pending"
        error = checked["last_check_error"]
        assert isinstance(error, dict) and error["code"] == "cname_wrong_target"
        with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
            stack.handshake("victim.e2e.test")

        # 3. A name verified for one tenant and claimed by another: refused; the owner's
        #    routing is untouched and the squatter cannot even see it.
        publish(stack, "taken CNAME app4.apps")
        stack.wait_status(owner, "taken.e2e.test", "verified", timeout=20)
        claim = stack.attach(squatter, "taken.e2e.test", "app5")
        assert claim.status == 409, claim.body
        assert claim.body["error"]["code"] == "HOSTNAME_ALREADY_REGISTERED"
        peek = stack.domaingate.api("GET", "/domains/taken.e2e.test", token=squatter)
        assert peek.status == 404
        assert stack.domain(owner, "taken.e2e.test")["app"] == "app4"
        time.sleep(1)
    assert stack.caddy.cert_dirs("unclaimed.e2e.test") == []
    assert stack.caddy.cert_dirs("victim.e2e.test") == []
    assert stack.caddy.cert_dirs("taken.e2e.test") == []
