"""Cloudflare's published edge ranges (https://www.cloudflare.com/ips-v4 and /ips-v6).

An address in these ranges at a tenant's name means Cloudflare's proxy ("orange cloud") answers
for it: the CNAME to the platform is hidden behind Cloudflare, which also terminates TLS, so Caddy
never sees the handshake. The list changes rarely; refresh it from the two URLs above.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPV4_RANGES: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "173.245.48.0/20",
        "103.21.244.0/22",
        "103.22.200.0/22",
        "103.31.4.0/22",
        "141.101.64.0/18",
        "108.162.192.0/18",
        "190.93.240.0/20",
        "188.114.96.0/20",
        "197.234.240.0/22",
        "198.41.128.0/17",
        "162.158.0.0/15",
        "104.16.0.0/13",
        "104.24.0.0/14",
        "172.64.0.0/13",
        "131.0.72.0/22",
    )
)

IPV6_RANGES: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2400:cb00::/32",
        "2606:4700::/32",
        "2803:f800::/32",
        "2405:b500::/32",
        "2405:8100::/32",
        "2a06:98c0::/29",
        "2c0f:f248::/32",
    )
)


def is_cloudflare(address: str) -> bool:
    """True when `address` (IPv4 or IPv6 text) is in Cloudflare's published ranges."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in IPV4_RANGES)
    return any(ip in net for net in IPV6_RANGES)


def all_cloudflare(addresses: Iterable[str]) -> bool:
    """True when there is at least one address and every one is Cloudflare's."""
    listed = list(addresses)
    return bool(listed) and all(is_cloudflare(address) for address in listed)
