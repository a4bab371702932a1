"""Settings: `DOMAINGATE_*` environment variables and an optional TOML file, validated at start.

The environment wins over the file. Every error names the key (and the file, when it came from
one), so a bad deployment stops at once with a message an operator can act on.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domaingate.claims import ATTACH_LIMIT_PER_TENANT, COOLDOWN_SECONDS
from domaingate.hostnames import LDH_LABEL

ENV_PREFIX = "DOMAINGATE_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        where = f" (in {source})" if source else ""
        super().__init__(f"setting {ENV_PREFIX}{key}{where}: {problem}")
        self.key = key


@dataclass(frozen=True, slots=True)
class Listen:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # A SQLite file, or a PostgreSQL URL (kept as the string it was given).
    db: Path | str = Path("./domaingate.db")
    api_listen: Listen = Listen("127.0.0.1", 8080)
    internal_listen: Listen = Listen("127.0.0.1", 9123)
    # The internal listener answers /tls-ask without authentication: binding it anywhere but
    # loopback must be a deliberate choice.
    internal_allow_public: bool = False
    # The reconciler's own listener (/metrics, /healthz): loopback under the same rule.
    reconciler_listen: Listen = Listen("127.0.0.1", 9124)
    platform_zone: str = "apps.localhost"
    reserved: tuple[str, ...] = ()
    upstream_template: str = "{app}.internal:80"
    edge_ipv4: tuple[str, ...] = ()
    edge_ipv6: tuple[str, ...] = ()
    resolvers: tuple[Listen, ...] = (Listen("1.1.1.1", 53), Listen("8.8.8.8", 53))
    txt_prefix: str = "_domaingate"
    require_txt: bool = False
    caddy_storage: Path = Path("/var/lib/caddy/.local/share/caddy")
    allowed_cas: tuple[str, ...] = ("letsencrypt.org",)
    # Unset: each certificate's own renewal window decides (domaingate.renewal).
    expiring_days: float | None = None
    admin_token: str | None = None
    max_domains_per_tenant: int = 10
    # A second quota per app; None: no per-app cap.
    max_domains_per_app: int | None = None
    # Attaches per tenant in a sliding hour (removed or not): what a tenant can churn.
    attach_rate_limit: int = ATTACH_LIMIT_PER_TENANT
    # Seconds a removed domain's row and events are kept; never less than the cool-down, which
    # reads the removed rows.
    removed_retention: float = 2592000
    webhook_url: str | None = None
    webhook_secret: str | None = None
    cert_scan_interval: float = 60
    pending_fast_interval: float = 60
    pending_fast_window: float = 900
    pending_slow_interval: float = 300
    retry_budget: float = 259200
    drift_interval: float = 3600
    drift_grace: float = 259200
    dns_timeout: float = 5.0
    check_concurrency: int = 50
    # Processes answering the internal listener; above 1, the extra ones are gate-only workers
    # sharing its port (SO_REUSEPORT), each following the database itself.
    gate_workers: int = 1
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        # Here rather than in load_settings() alone: a Settings built or copied in code
        # (dataclasses.replace, bench/) reaches server.run() too, and must not bind the
        # unauthenticated gate to a public address without consent either.
        _check_consistency(self)

    @property
    def reserved_zones(self) -> tuple[str, ...]:
        return (self.platform_zone, *self.reserved)

    def cname_target(self, app: str) -> str:
        return f"{app}.{self.platform_zone}"

    def upstream(self, app: str, tenant: str) -> str:
        """UPSTREAM_TEMPLATE for `app` of `tenant`, for an app that names no upstream of its own."""
        return fill_upstream(self.upstream_template, app, tenant)


_PLACEHOLDER = re.compile(r"\{app\}|\{tenant\}")


def fill_upstream(template: str, app: str, tenant: str) -> str:
    """`template` with `{app}` and `{tenant}` replaced."""
    # One pass, so a value is never searched for placeholders again.
    return _PLACEHOLDER.sub(lambda match: app if match.group(0) == "{app}" else tenant, template)


def _parse_listen(value: Any, default_port: int | None = None) -> Listen:
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


def _as_resolver(value: str) -> Listen:
    listen = _parse_listen(value, 53)
    try:
        ipaddress.ip_address(listen.host)
    except ValueError:
        # Resolving the resolvers' own names would need a resolver: take addresses only.
        raise ValueError(f"{value!r}: give resolvers as IP addresses, host or host:port") from None
    return listen


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _as_positive(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _as_count(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a whole number, got {value!r}")
    number = int(str(value).strip()) if not isinstance(value, int | float) else int(value)
    if number < 1:
        raise ValueError(f"expected a whole number of at least 1, got {value!r}")
    return number


_ZONE_LABEL = re.compile(LDH_LABEL)
_PREFIX_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _as_zone(value: Any) -> str:
    zone = str(value).strip().lower().rstrip(".")
    # Letters, digits and inner hyphens per label (A-labels for IDN): the zone becomes part of
    # every CNAME target, so "apps example.com" or "*.example.com" must stop the start.
    if not zone or not all(_ZONE_LABEL.fullmatch(label) for label in zone.split(".")):
        raise ValueError(f"expected a DNS zone such as apps.example.com, got {value!r}")
    return zone


def _as_addresses(version: int) -> Callable[[Any], tuple[str, ...]]:
    def parse(value: Any) -> tuple[str, ...]:
        out = []
        for item in _as_list(value):
            address = ipaddress.ip_address(item)
            if address.version != version:
                raise ValueError(f"{item} is not an IPv{version} address")
            out.append(str(address))
        return tuple(out)

    return parse


def _as_url(value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _as_secret(value: Any) -> str | None:
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


def _as_webhook_secret(value: Any) -> str | None:
    text = _as_secret(value)
    if text is not None:
        webhook_key(text)
    return text


def _as_template(value: Any) -> str:
    text = str(value).strip()
    if "{app}" not in text and "{tenant}" not in text:
        raise ValueError("must contain {app} or {tenant}")
    return text


def _as_prefix(value: Any) -> str:
    text = str(value).strip().strip(".").lower()
    if not text or not all(_PREFIX_LABEL.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"expected a DNS label such as _domaingate, got {value!r}")
    return text


def _as_log_level(value: Any) -> str:
    text = str(value).strip().upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return text


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def parse_db(value: Any) -> Path | str:
    """DB as given: a SQLite file path, or a PostgreSQL URL kept as its string."""
    text = str(value).strip()
    match = _URL_SCHEME.match(text)
    if match is None:
        return _as_path(text)
    # A URL is never taken for a file name: `postgresql:/…` would otherwise become a SQLite file.
    if match.group(1).lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported database URL scheme {match.group(1)!r}: give a SQLite file path or a "
            "postgresql://user:password@host:port/database URL"
        )
    return text


def _as_path(value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a file path, got an empty value")
    return Path(text)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "db": parse_db,
    "api_listen": _parse_listen,
    "internal_listen": _parse_listen,
    "internal_allow_public": _as_bool,
    "reconciler_listen": _parse_listen,
    "platform_zone": _as_zone,
    "reserved": lambda v: tuple(_as_zone(z) for z in _as_list(v)),
    "upstream_template": _as_template,
    "edge_ipv4": _as_addresses(4),
    "edge_ipv6": _as_addresses(6),
    "resolvers": lambda v: tuple(_as_resolver(r) for r in _as_list(v)) or _raise("is empty"),
    "txt_prefix": _as_prefix,
    "require_txt": _as_bool,
    "caddy_storage": _as_path,
    "allowed_cas": lambda v: tuple(ca.lower() for ca in _as_list(v)),
    "expiring_days": _as_positive,
    "admin_token": _as_secret,
    "max_domains_per_tenant": _as_count,
    "max_domains_per_app": lambda v: None if str(v).strip() == "" else _as_count(v),
    "attach_rate_limit": _as_count,
    "removed_retention": _as_positive,
    "webhook_url": _as_url,
    "webhook_secret": _as_webhook_secret,
    "cert_scan_interval": _as_positive,
    "pending_fast_interval": _as_positive,
    "pending_fast_window": _as_positive,
    "pending_slow_interval": _as_positive,
    "retry_budget": _as_positive,
    "drift_interval": _as_positive,
    "drift_grace": _as_positive,
    "dns_timeout": _as_positive,
    "check_concurrency": _as_count,
    "gate_workers": _as_count,
    "log_level": _as_log_level,
}


def _raise(problem: str) -> Any:
    raise ValueError(problem)


def load_settings(
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from a TOML file, then the environment, then keyword overrides (tests)."""
    env = os.environ if env is None else env
    known = {f.name for f in fields(Settings)}
    raw: dict[str, tuple[Any, str]] = {}
    if config is not None:
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError("CONFIG", f"cannot read {config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("CONFIG", f"{config} is not valid TOML: {exc}") from exc
        for key, value in data.items():
            name = key.lower().removeprefix(ENV_PREFIX.lower())
            if name not in known:
                raise SettingsError(key.upper(), "unknown setting", str(config))
            raw[name] = (value, str(config))
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in known:
            # A typo such as DOMAINGATE_RESOLVER would otherwise be silently ignored.
            raise SettingsError(key[len(ENV_PREFIX) :], "unknown setting", "environment")
        raw[name] = (value, "environment")
    values: dict[str, Any] = {}
    for name, (value, source) in raw.items():
        try:
            values[name] = _PARSERS[name](value)
        except (ValueError, TypeError) as exc:
            raise SettingsError(name.upper(), str(exc), source) from exc
    values.update(overrides)
    return Settings(**values)


def _check_consistency(settings: Settings) -> None:
    if not settings.internal_listen.is_loopback and not settings.internal_allow_public:
        raise SettingsError(
            "INTERNAL_LISTEN",
            f"{settings.internal_listen} is not a loopback address; the internal listener answers "
            "the TLS gate without authentication. Set DOMAINGATE_INTERNAL_ALLOW_PUBLIC=true to "
            "bind it there anyway",
        )
    if not settings.reconciler_listen.is_loopback and not settings.internal_allow_public:
        raise SettingsError(
            "RECONCILER_LISTEN",
            f"{settings.reconciler_listen} is not a loopback address; the reconciler's metrics "
            "listener has no authentication. Set DOMAINGATE_INTERNAL_ALLOW_PUBLIC=true to bind it "
            "there anyway",
        )
    if settings.internal_listen == settings.api_listen:
        raise SettingsError("API_LISTEN", "must differ from INTERNAL_LISTEN")
    # Both daemons run on the same machine (they share the SQLite file).
    if settings.reconciler_listen in (settings.internal_listen, settings.api_listen):
        raise SettingsError("RECONCILER_LISTEN", "must differ from INTERNAL_LISTEN and API_LISTEN")
    if settings.removed_retention < COOLDOWN_SECONDS:
        raise SettingsError(
            "REMOVED_RETENTION",
            f"{settings.removed_retention:g} s is shorter than the {COOLDOWN_SECONDS} s cool-down, "
            "which needs the removed rows",
        )
    if settings.webhook_url and not settings.webhook_secret:
        raise SettingsError("WEBHOOK_SECRET", "is required when WEBHOOK_URL is set")
