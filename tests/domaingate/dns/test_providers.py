"""Provider detection from NS host names, and Cloudflare's address ranges."""

from __future__ import annotations

import pytest

from domaingate.dns import cloudflare
from domaingate.dns.providers import detect, provider_of


@pytest.mark.parametrize(
    ("nameserver", "provider"),
    [
        ("ada.ns.cloudflare.com", "Cloudflare"),
        ("NS1.CLOUDFLARE.COM.", "Cloudflare"),
        ("ns51.domaincontrol.com", "GoDaddy"),
        ("dns1.registrar-servers.com", "Namecheap"),
        ("ns-1234.awsdns-12.org", "Amazon Route 53"),
        ("ns-567.awsdns-34.co.uk.", "Amazon Route 53"),
        ("ns1.digitalocean.com", "DigitalOcean"),
        ("ns-cloud-a1.googledomains.com", "Google Cloud DNS"),
        ("ns1.googledomains.com", "Google Cloud DNS"),
        ("ns1-01.azure-dns.com", "Azure DNS"),
        ("ns.test", None),
        ("cloudflare.com.evil.test", None),
        ("notcloudflare.com", None),
    ],
)
def test_provider_of(nameserver: str, provider: str | None) -> None:
    assert provider_of(nameserver) == provider


def test_detect_takes_the_majority() -> None:
    assert detect(["a.ns.cloudflare.com", "ns1.digitalocean.com", "b.ns.cloudflare.com"]) == (
        "Cloudflare"
    )


def test_detect_breaks_ties_by_table_order() -> None:
    assert detect(["ns1.digitalocean.com", "ns51.domaincontrol.com"]) == "GoDaddy"


def test_detect_unknown() -> None:
    assert detect([]) is None
    assert detect(["ns1.example.net"]) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("104.16.1.1", True),
        ("172.67.0.1", True),
        ("2606:4700::6810:84e5", True),
        ("192.0.2.10", False),
        ("2001:db8::1", False),
        ("not-an-ip", False),
    ],
)
def test_is_cloudflare(address: str, expected: bool) -> None:
    assert cloudflare.is_cloudflare(address) is expected


def test_all_cloudflare_needs_at_least_one() -> None:
    assert not cloudflare.all_cloudflare([])
    assert cloudflare.all_cloudflare(["104.16.1.1", "2606:4700::1"])
    assert not cloudflare.all_cloudflare(["104.16.1.1", "192.0.2.10"])
