"""Settings: every key from the environment and from TOML, env over TOML, errors name the key."""

from __future__ import annotations

import base64
import socket
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from domaingate.settings import Listen, Settings, SettingsError, load_settings, webhook_key
from domaingate.targets import PostgresServer, SqliteFile

# key: (environment value, TOML value, the parsed value)
KEYS: dict[str, tuple[str, Any, Any]] = {
    "DB": (
        "/srv/dg/domaingate.db",
        "/srv/dg/domaingate.db",
        SqliteFile(Path("/srv/dg/domaingate.db")),
    ),
    # With a PostgreSQL DB only (the tests below give it one).
    "DB_READ": (
        "postgresql://dg:secret@standby.example:5432/dg",
        "postgresql://dg:secret@standby.example:5432/dg",
        PostgresServer("postgresql://dg:secret@standby.example:5432/dg"),
    ),
    "API_LISTEN": ("0.0.0.0:8443", "0.0.0.0:8443", Listen("0.0.0.0", 8443)),
    "INTERNAL_LISTEN": ("127.0.0.2:9999", "127.0.0.2:9999", Listen("127.0.0.2", 9999)),
    "INTERNAL_ALLOW_PUBLIC": ("true", True, True),
    "RECONCILER_LISTEN": ("[::1]:9998", "[::1]:9998", Listen("::1", 9998)),
    "PLATFORM_ZONE": ("Apps.Example.COM.", "apps.example.com", "apps.example.com"),
    "RESERVED": (
        "corp.example, Internal.Example.",
        ["corp.example", "internal.example"],
        ("corp.example", "internal.example"),
    ),
    "UPSTREAM_TEMPLATE": (
        "{app}.{tenant}.svc:8080",
        "{app}.{tenant}.svc:8080",
        "{app}.{tenant}.svc:8080",
    ),
    "EDGE_IPV4": ("192.0.2.1,192.0.2.2", ["192.0.2.1", "192.0.2.2"], ("192.0.2.1", "192.0.2.2")),
    "EDGE_IPV6": ("2001:DB8::1", ["2001:db8::1"], ("2001:db8::1",)),
    "RESOLVERS": (
        "9.9.9.9, 127.0.0.1:5353,[::1]:53",
        ["9.9.9.9", "127.0.0.1:5353", "[::1]:53"],
        (Listen("9.9.9.9", 53), Listen("127.0.0.1", 5353), Listen("::1", 53)),
    ),
    "TXT_PREFIX": ("_verify", "_verify", "_verify"),
    "REQUIRE_TXT": ("yes", True, True),
    "CADDY_STORAGE": ("/var/caddy", "/var/caddy", Path("/var/caddy")),
    "ALLOWED_CAS": (
        "letsencrypt.org,Sectigo.com",
        ["letsencrypt.org", "sectigo.com"],
        ("letsencrypt.org", "sectigo.com"),
    ),
    "EXPIRING_DAYS": ("30", 30, 30.0),
    "ADMIN_TOKEN": (
        "admin-secret-0123456789",
        "admin-secret-0123456789",
        "admin-secret-0123456789",
    ),
    "MAX_DOMAINS_PER_TENANT": ("250", 250, 250),
    "MAX_DOMAINS_PER_APP": ("10", 10, 10),
    "REMOVED_RETENTION": ("604800", 604800, 604800.0),
    "ATTACH_RATE_LIMIT": ("300", 300, 300),
    "WEBHOOK_URL": (
        "https://hooks.example/x",
        "https://hooks.example/x",
        "https://hooks.example/x",
    ),
    "WEBHOOK_SECRET": (
        "whsec-0123456789abcdef",
        "whsec-0123456789abcdef",
        "whsec-0123456789abcdef",
    ),
    "CERT_SCAN_INTERVAL": ("15", 15, 15.0),
    "EDGE_NAME": ("edge-eu1.example", "edge-eu1.example", "edge-eu1.example"),
    "EDGE_STALE_AFTER": ("3600", 3600, 3600.0),
    "PENDING_FAST_INTERVAL": ("0.5", 0.5, 0.5),
    "PENDING_FAST_WINDOW": ("120", 120, 120.0),
    "PENDING_SLOW_INTERVAL": ("600", 600, 600.0),
    "RETRY_BUDGET": ("86400", 86400, 86400.0),
    "DRIFT_INTERVAL": ("1800", 1800, 1800.0),
    "DRIFT_GRACE": ("7200", 7200, 7200.0),
    "DNS_TIMEOUT": ("2.5", 2.5, 2.5),
    "CHECK_CONCURRENCY": ("8", 8, 8),
    "GATE_WORKERS": ("4", 4, 4),
    "API_MAX_CONNECTIONS": ("500", 500, 500),
    "INTERNAL_MAX_CONNECTIONS": ("2000", 2000, 2000),
    "API_HEADER_TIMEOUT": ("2.5", 2.5, 2.5),
    "GATE_SNAPSHOT": (
        "/srv/dg/gate.snapshot",
        "/srv/dg/gate.snapshot",
        Path("/srv/dg/gate.snapshot"),
    ),
    "GATE_MAX_STALENESS": ("600", 600, 600.0),
    "LOG_LEVEL": ("debug", "DEBUG", "DEBUG"),
}
SPEC_KEYS = {
    "DB",
    "DB_READ",
    "REMOVED_RETENTION",
    "API_LISTEN",
    "INTERNAL_LISTEN",
    "PLATFORM_ZONE",
    "RESERVED",
    "UPSTREAM_TEMPLATE",
    "EDGE_IPV4",
    "EDGE_IPV6",
    "RESOLVERS",
    "TXT_PREFIX",
    "REQUIRE_TXT",
    "CADDY_STORAGE",
    "ALLOWED_CAS",
    "EXPIRING_DAYS",
    "ADMIN_TOKEN",
    "MAX_DOMAINS_PER_TENANT",
    "MAX_DOMAINS_PER_APP",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "CERT_SCAN_INTERVAL",
    "PENDING_FAST_INTERVAL",
    "PENDING_FAST_WINDOW",
    "PENDING_SLOW_INTERVAL",
    "RETRY_BUDGET",
    "DRIFT_INTERVAL",
    "DRIFT_GRACE",
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return repr(value)


def write_toml(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "domaingate.toml"
    path.write_text(
        "".join(f"{key.lower()} = {toml_value(value)}\n" for key, value in values.items()),
        encoding="utf-8",
    )
    return path


def test_the_table_covers_every_setting_and_the_spec() -> None:
    assert {f.name.upper() for f in fields(Settings)} == set(KEYS)
    assert set(KEYS) >= SPEC_KEYS


def test_defaults_are_the_specs() -> None:
    settings = load_settings(env={})
    assert settings.db == SqliteFile(Path("./domaingate.db"))
    assert settings.api_listen == Listen("127.0.0.1", 8080)
    assert settings.internal_listen == Listen("127.0.0.1", 9123)
    assert settings.reconciler_listen == Listen("127.0.0.1", 9124)
    assert settings.platform_zone == "apps.localhost"
    assert settings.reserved == ()
    assert settings.upstream_template == "{app}.internal:80"
    assert settings.edge_ipv4 == () and settings.edge_ipv6 == ()
    assert settings.resolvers == (Listen("1.1.1.1", 53), Listen("8.8.8.8", 53))
    assert settings.txt_prefix == "_domaingate"
    assert settings.require_txt is False
    assert settings.caddy_storage == Path("/var/lib/caddy/.local/share/caddy")
    assert settings.allowed_cas == ("letsencrypt.org",)
    assert settings.expiring_days is None  # each certificate's own renewal window
    assert settings.admin_token is None
    assert settings.max_domains_per_tenant == 10
    assert settings.max_domains_per_app is None
    assert settings.webhook_url is None and settings.webhook_secret is None
    assert settings.cert_scan_interval == 60
    assert settings.edge_name == socket.gethostname()  # who reports this edge's certificates
    assert settings.edge_stale_after == 86400
    assert (settings.pending_fast_interval, settings.pending_fast_window) == (60, 900)
    assert (settings.pending_slow_interval, settings.retry_budget) == (300, 259200)
    assert (settings.drift_interval, settings.drift_grace) == (3600, 259200)
    # Unset caps: sized from RLIMIT_NOFILE when the gateway starts (gateway.caps).
    assert settings.api_max_connections is None and settings.internal_max_connections is None
    assert settings.api_header_timeout == 10
    # Unset: the snapshot beside the SQLite file, and the last known list served however long
    # the database stays away.
    assert settings.gate_snapshot_path == Path("./domaingate.db.gate-snapshot")
    assert settings.gate_max_staleness is None


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_key_parses_from_the_environment(key: str) -> None:
    env_value, _, expected = KEYS[key]
    env = {f"DOMAINGATE_{key}": env_value}
    if key == "WEBHOOK_URL":
        env["DOMAINGATE_WEBHOOK_SECRET"] = "whsec-0123456789abcdef"
    if key == "API_LISTEN":
        env["DOMAINGATE_INTERNAL_LISTEN"] = "127.0.0.1:9123"
    if key == "DB_READ":
        env["DOMAINGATE_DB"] = PRIMARY
    settings = load_settings(env=env)
    assert getattr(settings, key.lower()) == expected


def test_every_key_parses_from_toml(tmp_path: Path) -> None:
    # DB_READ needs a PostgreSQL DB, where KEYS' DB is a file: its own test follows.
    keys = {key: value for key, value in KEYS.items() if key != "DB_READ"}
    config = write_toml(tmp_path, {key: toml for key, (_, toml, _) in keys.items()})
    settings = load_settings(config=config, env={})
    for key, (_, _, expected) in keys.items():
        assert getattr(settings, key.lower()) == expected, key


PRIMARY = "postgresql://dg:secret@primary.example:5432/dg"


def test_db_read_parses_from_toml_beside_a_postgresql_db(tmp_path: Path) -> None:
    _, toml, expected = KEYS["DB_READ"]
    config = write_toml(tmp_path, {"DB": PRIMARY, "DB_READ": toml})
    settings = load_settings(config=config, env={})
    assert settings.db_read == expected
    assert settings.db == PostgresServer(PRIMARY)
    # Shown without its password, as DB is.
    assert "secret" not in repr(settings.db_read) and "secret" not in str(settings.db_read)
    assert load_settings(env={"DOMAINGATE_DB": PRIMARY, "DOMAINGATE_DB_READ": ""}).db_read is None


def test_db_read_is_refused_beside_a_sqlite_db() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOMAINGATE_DB_READ": PRIMARY})
    assert caught.value.key == "DB_READ"
    assert "SQLite" in str(caught.value)


def test_toml_keys_may_be_written_like_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('DOMAINGATE_PLATFORM_ZONE = "apps.example.org"\nREQUIRE_TXT = true\n')
    settings = load_settings(config=config, env={})
    assert settings.platform_zone == "apps.example.org"
    assert settings.require_txt is True


def test_the_environment_wins_over_toml(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path, {"PLATFORM_ZONE": "from.toml", "MAX_DOMAINS_PER_TENANT": 3, "DB": "/toml.db"}
    )
    settings = load_settings(
        config=config,
        env={"DOMAINGATE_PLATFORM_ZONE": "from.env", "DOMAINGATE_MAX_DOMAINS_PER_TENANT": "7"},
    )
    assert settings.platform_zone == "from.env"
    assert settings.max_domains_per_tenant == 7
    assert settings.db == SqliteFile(Path("/toml.db"))  # not in the environment: the file's


def test_other_environment_variables_are_ignored() -> None:
    settings = load_settings(env={"PATH": "/bin", "DOMAINGATEWAY": "x", "domaingate_db": "y"})
    assert settings.db == SqliteFile(Path("./domaingate.db"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RESOLVERS", ""),
        ("RESOLVERS", " , "),
        ("RESOLVERS", "dns.google"),
        ("RESOLVERS", "1.1.1.1:0"),
        ("RESOLVERS", "1.1.1.1:65536"),
        ("EXPIRING_DAYS", "-1"),
        ("EXPIRING_DAYS", "0"),
        ("EXPIRING_DAYS", "nan"),
        ("EXPIRING_DAYS", "inf"),
        ("EXPIRING_DAYS", "two weeks"),
        ("CERT_SCAN_INTERVAL", "-5"),
        ("EDGE_NAME", ""),
        ("EDGE_NAME", "edge a"),
        ("EDGE_NAME", "edge/../a"),
        ("EDGE_NAME", "e" * 64),
        ("EDGE_STALE_AFTER", "0"),
        ("PENDING_FAST_INTERVAL", "0"),
        ("RETRY_BUDGET", ""),
        ("DRIFT_GRACE", "-1"),
        ("MAX_DOMAINS_PER_TENANT", "0"),
        ("MAX_DOMAINS_PER_TENANT", "2.5"),
        ("MAX_DOMAINS_PER_TENANT", "ten"),
        ("MAX_DOMAINS_PER_TENANT", "9" * 5000),
        ("API_LISTEN", "127.0.0.1"),
        ("API_LISTEN", "127.0.0.1:http"),
        ("API_LISTEN", ":8080"),
        ("API_LISTEN", "[::1:8080"),
        ("INTERNAL_LISTEN", "127.0.0.1:99999"),
        ("RECONCILER_LISTEN", "127.0.0.1"),
        ("RECONCILER_LISTEN", "127.0.0.1:0"),
        ("INTERNAL_ALLOW_PUBLIC", "maybe"),
        ("REQUIRE_TXT", "2"),
        ("PLATFORM_ZONE", ""),
        ("PLATFORM_ZONE", "apps..example.com"),
        ("PLATFORM_ZONE", "apps example.com"),
        ("PLATFORM_ZONE", "*.example.com"),
        ("RESERVED", "ok.example,bad..example"),
        ("UPSTREAM_TEMPLATE", "backend:80"),
        ("REMOVED_RETENTION", "0"),
        ("ATTACH_RATE_LIMIT", "0"),
        ("API_MAX_CONNECTIONS", "0"),
        ("INTERNAL_MAX_CONNECTIONS", "many"),
        ("API_HEADER_TIMEOUT", "0"),
        ("REMOVED_RETENTION", "never"),
        ("EDGE_IPV4", "2001:db8::1"),
        ("EDGE_IPV4", "192.0.2.300"),
        ("EDGE_IPV6", "192.0.2.1"),
        ("TXT_PREFIX", ""),
        ("TXT_PREFIX", "bad prefix"),
        ("ADMIN_TOKEN", "short"),
        ("WEBHOOK_URL", "ftp://hooks.example"),
        ("WEBHOOK_URL", "hooks.example"),
        ("WEBHOOK_SECRET", "short"),
        ("LOG_LEVEL", "LOUD"),
        ("DB", ""),
        ("DB", "mysql://user@db.example/domaingate"),
        ("DB", "sqlite:///var/lib/domaingate.db"),
        ("DB_READ", "/var/lib/standby.db"),
        ("DB_READ", "mysql://user@db.example/domaingate"),
        ("FOO", "1"),
        ("RESOLVER", "1.1.1.1"),
    ],
)
def test_a_bad_environment_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={f"DOMAINGATE_{key}": value})
    assert caught.value.key == key
    assert f"DOMAINGATE_{key}" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("api_listen = 8080", "API_LISTEN"),
        ("internal_listen = ['127.0.0.1:9123']", "INTERNAL_LISTEN"),
        ("resolvers = [1, 2]", "RESOLVERS"),
        ("expiring_days = 'soon'", "EXPIRING_DAYS"),
        ("expiring_days = true", "EXPIRING_DAYS"),
        ("max_domains_per_tenant = 1.5", "MAX_DOMAINS_PER_TENANT"),
        ("max_domains_per_tenant = nan", "MAX_DOMAINS_PER_TENANT"),
        ("max_domains_per_tenant = true", "MAX_DOMAINS_PER_TENANT"),
        ("max_domains_per_app = 0", "MAX_DOMAINS_PER_APP"),
        ("max_domains_per_app = 2.5", "MAX_DOMAINS_PER_APP"),
        ("require_txt = 'perhaps'", "REQUIRE_TXT"),
        ("foo = 1", "FOO"),
        ("[gateway]\ndb = 'x'", "GATEWAY"),
        ("db = ", "CONFIG"),
    ],
)
def test_a_bad_toml_value_names_the_key_and_the_file(tmp_path: Path, line: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(line + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config=config, env={})
    assert caught.value.key == key
    assert str(config) in str(caught.value)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(config=tmp_path / "absent.toml", env={})
    assert caught.value.key == "CONFIG"


# The reconciler's metrics listener follows the internal listener's loopback rule.
UNAUTHENTICATED_LISTENERS = ["INTERNAL_LISTEN", "RECONCILER_LISTEN"]


@pytest.mark.parametrize("key", UNAUTHENTICATED_LISTENERS)
@pytest.mark.parametrize("listen", ["0.0.0.0:9125", "192.0.2.5:9125", "[::]:9125", "gate:9125"])
def test_a_non_loopback_internal_listener_needs_explicit_consent(key: str, listen: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={f"DOMAINGATE_{key}": listen})
    assert caught.value.key == key
    assert "DOMAINGATE_INTERNAL_ALLOW_PUBLIC" in str(caught.value)
    settings = load_settings(
        env={f"DOMAINGATE_{key}": listen, "DOMAINGATE_INTERNAL_ALLOW_PUBLIC": "true"}
    )
    assert str(getattr(settings, key.lower())) == listen


@pytest.mark.parametrize("key", UNAUTHENTICATED_LISTENERS)
@pytest.mark.parametrize("listen", ["127.0.0.1:9125", "127.9.9.9:1", "[::1]:9125", "localhost:1"])
def test_loopback_internal_listeners_are_fine(key: str, listen: str) -> None:
    settings = load_settings(env={f"DOMAINGATE_{key}": listen})
    assert getattr(settings, key.lower()).is_loopback


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"DOMAINGATE_API_LISTEN": "127.0.0.1:9123"}, "API_LISTEN"),
        ({"DOMAINGATE_RECONCILER_LISTEN": "127.0.0.1:9123"}, "RECONCILER_LISTEN"),
        ({"DOMAINGATE_RECONCILER_LISTEN": "127.0.0.1:8080"}, "RECONCILER_LISTEN"),
    ],
)
def test_listeners_must_differ(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env)
    assert caught.value.key == key


def test_a_webhook_url_needs_its_secret() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOMAINGATE_WEBHOOK_URL": "https://hooks.example/x"})
    assert caught.value.key == "WEBHOOK_SECRET"


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), b"k" * 24),
        ("whsec_" + base64.b64encode(b"k" * 24).decode().rstrip("="), b"k" * 24),  # unpadded
        ("any other string, 16+ characters", b"any other string, 16+ characters"),
        ("whsec-not-the-prefix-0123", b"whsec-not-the-prefix-0123"),
    ],
)
def test_a_webhook_secret_is_read_as_the_standard_webhooks_libraries_read_it(
    secret: str, key: bytes
) -> None:
    settings = load_settings(env={"DOMAINGATE_WEBHOOK_SECRET": secret})
    assert settings.webhook_secret == secret
    assert webhook_key(secret) == key


@pytest.mark.parametrize("secret", ["whsec_" + "A" * 17, "whsec_" + "QUFB" * 4])
def test_a_whsec_secret_that_is_no_key_is_refused(secret: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOMAINGATE_WEBHOOK_SECRET": secret})
    assert caught.value.key == "WEBHOOK_SECRET"
    assert "whsec_" in str(caught.value)


def test_derived_values() -> None:
    settings = load_settings(
        env={
            "DOMAINGATE_PLATFORM_ZONE": "apps.example.com",
            "DOMAINGATE_RESERVED": "corp.example",
            "DOMAINGATE_UPSTREAM_TEMPLATE": "{app}-svc.{tenant}.{app}:80",
        }
    )
    assert settings.reserved_zones == ("apps.example.com", "corp.example")
    assert settings.cname_target("shop") == "shop.apps.example.com"
    assert settings.upstream("shop", "acme") == "shop-svc.acme.shop:80"
    # One pass: what was filled in is never searched for placeholders again.
    assert settings.upstream("shop", "{app}") == "shop-svc.{app}.shop:80"


def test_a_tenant_only_template_is_allowed() -> None:
    settings = load_settings(env={"DOMAINGATE_UPSTREAM_TEMPLATE": "{tenant}.internal:80"})
    assert settings.upstream("web", "acme") == "acme.internal:80"


def test_removed_retention_defaults_to_30_days_and_never_undercuts_the_cooldown() -> None:
    assert load_settings(env={}).removed_retention == 2592000
    assert load_settings(env={"DOMAINGATE_REMOVED_RETENTION": "172800"}).removed_retention == 172800
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOMAINGATE_REMOVED_RETENTION": "172799"})
    assert caught.value.key == "REMOVED_RETENTION"
    assert "cool-down" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://dg:secret@db.example:5432/domaingate",
        "postgres://dg@10.0.0.5/domaingate",
        "postgresql:///domaingate?host=/run/postgresql",
    ],
)
def test_a_postgresql_url_is_kept_as_a_url(url: str) -> None:
    settings = load_settings(env={"DOMAINGATE_DB": url})
    assert settings.db == PostgresServer(url)
    assert settings.db.location == url


def test_another_scheme_is_refused_not_taken_for_a_file_name() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOMAINGATE_DB": "mysql://db.example/dg"})
    assert "DOMAINGATE_DB" in str(caught.value)
    assert "'mysql'" in str(caught.value)


def test_the_gate_snapshot_of_postgresql_is_in_the_state_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"DOMAINGATE_DB": "postgresql://dg@db.internal/dg"}
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/domaingate")
    assert load_settings(env=env).gate_snapshot_path == Path(
        "/var/lib/domaingate/domaingate-gate.snapshot"
    )
    monkeypatch.delenv("STATE_DIRECTORY")
    assert load_settings(env=env).gate_snapshot_path == Path("domaingate-gate.snapshot")


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_a_bad_gate_max_staleness_names_the_key(value: str) -> None:
    with pytest.raises(SettingsError, match="GATE_MAX_STALENESS"):
        load_settings(env={"DOMAINGATE_GATE_MAX_STALENESS": value})
