"""Settings: `DOMAINGATE_*` environment variables and an optional TOML file, validated at start.

The environment wins over the file. Every error names the key (and the file, when it came from
one), so a bad deployment stops at once with a message an operator can act on.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from domaingate.lifecycle.limits import ATTACH_LIMIT_PER_TENANT, COOLDOWN_SECONDS
from domaingate.settings_values import (
    Listen,
    as_addresses,
    as_bool,
    as_count,
    as_edge_name,
    as_list,
    as_log_level,
    as_path,
    as_positive,
    as_prefix,
    as_resolver,
    as_secret,
    as_template,
    as_url,
    as_webhook_secret,
    as_zone,
    parse_db,
    parse_db_read,
    parse_listen,
    webhook_key,
)
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile

# Listen and webhook_key live with the value parsers and are used through this module too.
__all__ = [
    "ENV_PREFIX",
    "Listen",
    "Settings",
    "SettingsError",
    "fill_upstream",
    "load_settings",
    "webhook_key",
]

ENV_PREFIX = "DOMAINGATE_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        where = f" (in {source})" if source else ""
        super().__init__(f"setting {ENV_PREFIX}{key}{where}: {problem}")
        self.key = key


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # A SQLite file, or a PostgreSQL server by its URL (domaingate.targets).
    db: DatabaseTarget = SqliteFile(Path("./domaingate.db"))
    # A hot standby of DB's PostgreSQL the gate loads and follows from; writes go to DB.
    db_read: PostgresServer | None = None
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
    # Who reports this edge's certificates (reconciler.certificates.report); the host by default.
    edge_name: str = field(default_factory=socket.gethostname)
    # Seconds after which a storage that stopped reporting stops counting (domaingate.store.edges).
    edge_stale_after: float = 86400
    allowed_cas: tuple[str, ...] = ("letsencrypt.org",)
    # Unset: each certificate's own renewal window decides (domaingate.lifecycle.renewal).
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
    # Connections each listener holds open at most; None: sized from RLIMIT_NOFILE at start
    # (gateway.caps), so that together they never take the descriptors the gate needs.
    api_max_connections: int | None = None
    internal_max_connections: int | None = None
    # Seconds a request head may take on the API listener, from the connection's accept (or a
    # later request's first byte): a client sending nothing, or a byte at a time, is let go.
    api_header_timeout: float = 10.0
    # Where the gate keeps the snapshot of its allowlist that a restart during a database outage
    # serves from; None: beside a SQLite file, else in the state directory (gate_snapshot_path).
    gate_snapshot: Path | None = None
    # Seconds without a fresh view of the database after which /tls-ask denies; None: keep
    # serving the last known list for as long as the outage lasts.
    gate_max_staleness: float | None = None
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        # Here rather than in load_settings() alone: a Settings built or copied in code
        # (dataclasses.replace, bench/) reaches server.run() too, and must not bind the
        # unauthenticated gate to a public address without consent either.
        if not isinstance(self.db, SqliteFile | PostgresServer):
            raise TypeError(f"db must be a typed database target, not {type(self.db).__name__}")
        if self.db_read is not None and not isinstance(self.db_read, PostgresServer):
            raise TypeError(f"db_read must be a PostgresServer, not {type(self.db_read).__name__}")
        _check_consistency(self)

    @property
    def gate_snapshot_path(self) -> Path:
        """GATE_SNAPSHOT, or its default: `{DB}.gate-snapshot` beside a SQLite file; for
        PostgreSQL `domaingate-gate.snapshot` in systemd's state directory (STATE_DIRECTORY,
        /var/lib/domaingate under the shipped unit), else the working directory."""
        if self.gate_snapshot is not None:
            return self.gate_snapshot
        if isinstance(self.db, SqliteFile):
            return self.db.path.with_name(f"{self.db.path.name}.gate-snapshot")
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(state or ".") / "domaingate-gate.snapshot"

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


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "db": parse_db,
    "db_read": parse_db_read,
    "api_listen": parse_listen,
    "internal_listen": parse_listen,
    "internal_allow_public": as_bool,
    "reconciler_listen": parse_listen,
    "platform_zone": as_zone,
    "reserved": lambda v: tuple(as_zone(z) for z in as_list(v)),
    "upstream_template": as_template,
    "edge_ipv4": as_addresses(4),
    "edge_ipv6": as_addresses(6),
    "resolvers": lambda v: tuple(as_resolver(r) for r in as_list(v)) or _raise("is empty"),
    "txt_prefix": as_prefix,
    "require_txt": as_bool,
    "caddy_storage": as_path,
    "edge_name": as_edge_name,
    "edge_stale_after": as_positive,
    "allowed_cas": lambda v: tuple(ca.lower() for ca in as_list(v)),
    "expiring_days": as_positive,
    "admin_token": as_secret,
    "max_domains_per_tenant": as_count,
    "max_domains_per_app": lambda v: None if str(v).strip() == "" else as_count(v),
    "attach_rate_limit": as_count,
    "removed_retention": as_positive,
    "webhook_url": as_url,
    "webhook_secret": as_webhook_secret,
    "cert_scan_interval": as_positive,
    "pending_fast_interval": as_positive,
    "pending_fast_window": as_positive,
    "pending_slow_interval": as_positive,
    "retry_budget": as_positive,
    "drift_interval": as_positive,
    "drift_grace": as_positive,
    "dns_timeout": as_positive,
    "check_concurrency": as_count,
    "gate_workers": as_count,
    "api_max_connections": lambda v: None if str(v).strip() == "" else as_count(v),
    "internal_max_connections": lambda v: None if str(v).strip() == "" else as_count(v),
    "api_header_timeout": as_positive,
    "gate_snapshot": as_path,
    "gate_max_staleness": lambda v: None if str(v).strip() == "" else as_positive(v),
    "log_level": as_log_level,
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
    if settings.db_read is not None and not isinstance(settings.db, PostgresServer):
        raise SettingsError(
            "DB_READ",
            "is a PostgreSQL standby of DB, and DB is a SQLite file: unset DB_READ, or set DB "
            "to the standby's primary",
        )
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
