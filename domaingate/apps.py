"""App rules: an app's name (a DNS label of its CNAME target) and its upstream (`host:port`).

Both the API and the command line take apps from people; the rules live here once.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from domaingate.errors import InvalidApp, InvalidRequest
from domaingate.hostnames import LDH_LABEL, NAME_LABEL

# An app name becomes a DNS label of the CNAME target `{app}.{PLATFORM_ZONE}`.
_APP = re.compile(LDH_LABEL)
_HOST_LABEL = re.compile(NAME_LABEL)
MAX_UPSTREAM = 261  # a 253-octet name, ':' and a five-digit port


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    """A registered app: its name, the tenant it belongs to, and its own upstream (if any)."""

    name: str
    tenant_id: int
    tenant: str
    upstream: str | None
    created_at: float
    updated_at: float


def check_app(value: object) -> str:
    if not isinstance(value, str) or not _APP.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise InvalidApp(
            f"app {shown!r} must be 1-63 lower-case letters, digits or inner hyphens "
            "(it becomes a DNS label)"
        )
    return value


def check_upstream(value: object) -> str:
    """`host:port`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1-65535.

    Caddy's reverse_proxy dials it as given: anything else (a scheme, a path, spaces) is refused
    here rather than found broken at the first request.
    """
    if not isinstance(value, str) or len(value) > MAX_UPSTREAM:
        raise InvalidRequest("upstream must be a string host:port", fields=["upstream"])
    text = value
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if sep and rest.startswith(":") else ""
        ok = bool(sep) and _is_ipv6(host)
    else:
        host, sep, port = text.rpartition(":")
        ok = bool(sep) and _is_host(host)
    if not ok or not (port.isascii() and port.isdigit() and len(port) <= 5):
        raise InvalidRequest(
            f"upstream {text[:80]!r} must be host:port (a DNS name, an IPv4 address or "
            "[an IPv6 address], and a port)",
            fields=["upstream"],
        )
    if not 1 <= int(port) <= 65535:
        raise InvalidRequest(f"upstream port {port} is not 1-65535", fields=["upstream"])
    return text


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _is_host(text: str) -> bool:
    if not text or len(text) > 253:
        return False
    labels = text.split(".")
    if all(label.isdigit() for label in labels):
        try:
            return ipaddress.ip_address(text).version == 4
        except ValueError:
            return False
    return all(_HOST_LABEL.fullmatch(label) for label in labels)
