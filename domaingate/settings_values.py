"""The values a setting takes: the listening address and the parsers that turn a raw value (an
environment string, or whatever TOML gave) into it.

Each parser raises ValueError or TypeError with what was expected; `load_settings` adds the key
and where the value came from.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domaingate.hostnames import LDH_LABEL, NAME_LABEL
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile


@dataclass(frozen=True, slots=True)
class Listen:
    """A host and port: a listener's, or a resolver's to send queries to."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_listen(value: Any, default_port: int | None = None) -> Listen:
    if not isinstance(value, str):
        # TOML can give a number or a list here; say so instead of crashing.
        raise TypeError(f"expected a string such as 127.0.0.1:8080, got {value!r}")
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError("unclosed '[' in address")
        port_text = rest.removeprefix(":") if rest else ""
    elif text.count(":") > 1:
        host, port_text = text, ""  # bare IPv6 address
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("the host is empty")
    if not port_text:
        if default_port is None:
            raise ValueError("expected host:port")
        return Listen(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r}")
    return Listen(host, int(port_text))


def as_resolver(value: str) -> Listen:
    listen = parse_listen(value, 53)
    try:
        ipaddress.ip_address(listen.host)
    except ValueError:
        # Resolving the resolvers' own names would need a resolver: take addresses only.
        raise ValueError(f"{value!r}: give resolvers as IP addresses, host or host:port") from None
    return listen


def as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def as_positive(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def as_count(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a whole number, got {value!r}")
    number = int(str(value).strip()) if not isinstance(value, int | float) else int(value)
    if number < 1:
        raise ValueError(f"expected a whole number of at least 1, got {value!r}")
    return number


_ZONE_LABEL = re.compile(LDH_LABEL)
_PREFIX_LABEL = re.compile(NAME_LABEL)


def as_zone(value: Any) -> str:
    zone = str(value).strip().lower().rstrip(".")
    # Letters, digits and inner hyphens per label (A-labels for IDN): the zone becomes part of
    # every CNAME target, so "apps example.com" or "*.example.com" must stop the start.
    if not zone or not all(_ZONE_LABEL.fullmatch(label) for label in zone.split(".")):
        raise ValueError(f"expected a DNS zone such as apps.example.com, got {value!r}")
    return zone


def as_addresses(version: int) -> Callable[[Any], tuple[str, ...]]:
    def parse(value: Any) -> tuple[str, ...]:
        out = []
        for item in as_list(value):
            address = ipaddress.ip_address(item)
            if address.version != version:
                raise ValueError(f"{item} is not an IPv{version} address")
            out.append(str(address))
        return tuple(out)

    return parse


def as_url(value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def as_secret(value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if len(text) < 16:
        raise ValueError("must be at least 16 characters")
    return text


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def webhook_key(secret: str) -> bytes:
    """The HMAC key a WEBHOOK_SECRET stands for, as the Standard Webhooks libraries read it: the
    base64 after `whsec_`, or any other string as its UTF-8 bytes."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return secret.encode()
    try:
        # Exactly the libraries' decoding: padding appended, characters outside base64 skipped.
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX) + "==")
    except binascii.Error as exc:
        raise ValueError(f"{WEBHOOK_SECRET_PREFIX} must be followed by base64 ({exc})") from exc
    if len(key) < 16:
        raise ValueError(
            f"the base64 after {WEBHOOK_SECRET_PREFIX} must decode to 16 bytes or more"
        )
    return key


def as_webhook_secret(value: Any) -> str | None:
    text = as_secret(value)
    if text is not None:
        webhook_key(text)
    return text


def as_template(value: Any) -> str:
    text = str(value).strip()
    if "{app}" not in text and "{tenant}" not in text:
        raise ValueError("must contain {app} or {tenant}")
    return text


def as_prefix(value: Any) -> str:
    text = str(value).strip().strip(".").lower()
    if not text or not all(_PREFIX_LABEL.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"expected a DNS label such as _domaingate, got {value!r}")
    return text


_EDGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def as_edge_name(value: Any) -> str:
    """EDGE_NAME: shown on the operator's page and in the API, so plain and short."""
    text = str(value).strip()
    if not _EDGE_NAME.fullmatch(text):
        raise ValueError(
            f"expected up to 63 letters, digits, '.', '_' or '-' (a host name), got {value!r}"
        )
    return text


def as_log_level(value: Any) -> str:
    text = str(value).strip().upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return text


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def parse_db(value: Any) -> DatabaseTarget:
    """DB as given: a SQLite file path, or a PostgreSQL URL (a target already typed stays)."""
    if isinstance(value, SqliteFile | PostgresServer):
        return value
    if isinstance(value, Path):
        return SqliteFile(value)
    text = str(value).strip()
    match = _URL_SCHEME.match(text)
    if match is None:
        return SqliteFile(as_path(text))
    # A URL is never taken for a file name: `postgresql:/…` would otherwise become a SQLite file.
    if match.group(1).lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported database URL scheme {match.group(1)!r}: give a SQLite file path or a "
            "postgresql://user:password@host:port/database URL"
        )
    return PostgresServer(text)


def parse_db_read(value: Any) -> PostgresServer | None:
    """DB_READ: a PostgreSQL URL as DB takes one, or empty for none (a SQLite file is refused:
    there is no standby of one)."""
    if value is None or isinstance(value, PostgresServer):
        return value
    if str(value).strip() == "":
        return None
    target = parse_db(value)
    if not isinstance(target, PostgresServer):
        raise ValueError(
            "expected a postgresql://user:password@host:port/database URL of a hot standby"
        )
    return target


def as_path(value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a file path, got an empty value")
    return Path(text)
