"""The deployment files are checked by the real tools: `caddy validate` / `caddy adapt` for the
Caddyfiles, `systemd-analyze verify` for the units.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and
/opt/domaingate/venv/bin/domaingate exists only on an installed host. So the test verifies a copy
of each unit in a temporary directory where only that path is rewritten (to the `true` binary);
every other line is verified as shipped, and the shipped ExecStart is asserted separately.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from domaingate.dns.inflight import MAX_QUERIES_IN_FLIGHT

ROOT = Path(__file__).resolve().parent.parent
CADDYFILE = ROOT / "caddy" / "Caddyfile"
CADDYFILE_LOCAL = ROOT / "caddy" / "Caddyfile.local"
UNITS = {
    "domaingate-gateway.service": "serve",
    "domaingate-reconciler.service": "reconcile",
}
INSTALLED_BINARY = "/opt/domaingate/venv/bin/domaingate"
CONFIG = "/etc/domaingate/domaingate.toml"

CADDY = shutil.which("caddy")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _caddy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ACME_EMAIL"}
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    env.update(extra)
    return env


def _caddy(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert CADDY is not None, "caddy is not installed (apt-get install caddy)"
    return subprocess.run(
        [CADDY, *args],
        env=_caddy_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _adapt(tmp_path: Path, path: Path, **env: str) -> dict[str, Any]:
    result = _caddy(tmp_path, "adapt", "--adapter", "caddyfile", "--config", str(path), **env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every JSON object in the adapted config, depth first, in document order."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def _handlers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj for obj in _walk(config["apps"]["http"]) if "handler" in obj]


@pytest.mark.parametrize("path", [CADDYFILE, CADDYFILE_LOCAL], ids=["Caddyfile", "local"])
def test_caddy_validate_accepts_the_caddyfiles(tmp_path: Path, path: Path) -> None:
    result = _caddy(
        tmp_path,
        "validate",
        "--adapter",
        "caddyfile",
        "--config",
        str(path),
        ACME_EMAIL="ops@example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    # `caddy validate` warns when a Caddyfile is not in `caddy fmt` form; the shipped files are.
    assert "not formatted" not in result.stderr


def test_production_caddyfile_requires_the_acme_email(tmp_path: Path) -> None:
    result = _caddy(tmp_path, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE))
    assert result.returncode != 0
    assert "email" in result.stderr


def _check_wiring(config: dict[str, Any]) -> None:
    automation = config["apps"]["tls"]["automation"]
    assert automation["on_demand"]["ask"] == "http://127.0.0.1:9123/tls-ask"
    assert automation["on_demand"]["rate_limit"]["burst"] >= 1
    assert [p.get("on_demand") for p in automation["policies"]] == [True]

    handlers = _handlers(config)
    deletes = [
        name
        for h in handlers
        if h["handler"] == "headers"
        for name in h.get("request", {}).get("delete", [])
    ]
    assert sorted(deletes) == ["X-Domaingate-App", "X-Domaingate-Upstream"]
    proxies = [h for h in handlers if h["handler"] == "reverse_proxy"]
    assert len(proxies) == 2, proxies
    auth, app = proxies
    # forward_auth is a reverse_proxy that rewrites to GET /route on the gate ...
    assert auth["upstreams"] == [{"dial": "127.0.0.1:9123"}]
    assert auth["rewrite"] == {"method": "GET", "uri": "/route"}
    copied = auth["handle_response"][0]["routes"][0]["handle"][0]["request"]["set"]
    assert sorted(copied) == ["X-Domaingate-App", "X-Domaingate-Upstream"]
    # ... and the request then goes where the gate said.
    assert app["upstreams"] == [{"dial": "{http.request.header.X-Domaingate-Upstream}"}]
    # The client's own routing headers are dropped before forward_auth runs.
    order = [
        h["handler"]
        for h in handlers
        if h["handler"] == "reverse_proxy" or "delete" in h.get("request", {})
    ]
    assert order == ["headers", "headers", "reverse_proxy", "reverse_proxy"]


def test_production_caddyfile_wiring(tmp_path: Path) -> None:
    config = _adapt(tmp_path, CADDYFILE, ACME_EMAIL="ops@example.com")
    _check_wiring(config)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    policy = config["apps"]["tls"]["automation"]["policies"][0]
    # Caddy's default issuers (Let's Encrypt, then ZeroSSL), with the operator's e-mail.
    assert [(i["module"], i["email"]) for i in policy["issuers"]] == [
        ("acme", "ops@example.com"),
        ("zerossl", "ops@example.com"),
    ]


def test_local_caddyfile_wiring(tmp_path: Path) -> None:
    config = _adapt(tmp_path, CADDYFILE_LOCAL)
    _check_wiring(config)
    assert config["admin"]["listen"].startswith("127.0.0.1:")
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == ["127.0.0.1:8443"]
    assert config["apps"]["http"]["http_port"] == 8081
    assert config["apps"]["http"]["https_port"] == 8443
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    policy = config["apps"]["tls"]["automation"]["policies"][0]
    assert [i["module"] for i in policy["issuers"]] == ["internal"]


def _unit_settings(text: str) -> dict[str, list[str]]:
    """Key → values (a key may repeat) of a unit file, ignoring sections and comments."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None, "systemd-analyze is not installed (apt-get install systemd)"
    true = shutil.which("true")
    assert true is not None
    copies = []
    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text(encoding="utf-8")
        assert text.count(INSTALLED_BINARY) == 1
        copy = tmp_path / name
        copy.write_text(text.replace(INSTALLED_BINARY, true), encoding="utf-8")
        copies.append(str(copy))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify only warns (exit 0) about unknown keys or bad values: any output is a finding.
    assert result.stdout + result.stderr == ""


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_command_line_is_accepted_by_the_cli(tmp_path: Path, name: str) -> None:
    """The shipped ExecStart, run through the real `domaingate` entry point with only the binary
    and the config path swapped: the CLI parses it and reads that file. The file names an unknown
    key on purpose, so the daemon stops at once with the key and the file in its message (exit 2)
    instead of starting; a command line the CLI did not accept would end in a usage error."""
    settings = _unit_settings((ROOT / "systemd" / name).read_text(encoding="utf-8"))
    (exec_start,) = settings["ExecStart"]
    argv = exec_start.split()
    assert argv[0] == INSTALLED_BINARY
    assert argv.count(CONFIG) == 1
    config = tmp_path / "domaingate.toml"
    config.write_text("e2e_probe_unknown_key = 1\n", encoding="utf-8")
    args = [str(config) if arg == CONFIG else arg for arg in argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOMAINGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "domaingate", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert "usage:" not in result.stderr
    assert f"DOMAINGATE_E2E_PROBE_UNKNOWN_KEY (in {config})" in result.stderr


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_are_sandboxed(name: str) -> None:
    settings = _unit_settings((ROOT / "systemd" / name).read_text(encoding="utf-8"))

    def one(key: str) -> str:
        assert key in settings, f"{name}: {key}= missing"
        values = settings[key]
        assert len(values) == 1, f"{name}: {key}= repeated"
        return values[0]

    # `--config` is a global option of the CLI: it goes before the sub-command.
    assert one("ExecStart") == f"{INSTALLED_BINARY} --config {CONFIG} {UNITS[name]}"
    assert one("User") == "domaingate"
    assert one("Group") == "domaingate"
    assert one("DynamicUser") == "no"
    assert one("StateDirectory") == "domaingate"
    assert "DOMAINGATE_DB=/var/lib/domaingate/domaingate.db" in settings["Environment"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "UMask": "0027",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "30",
        "Restart": "on-failure",
        "StandardOutput": "journal",
    }
    for key, value in expected.items():
        assert one(key) == value, key
    assert settings["SystemCallFilter"][0] == "@system-service"
    writable = set(settings["ReadWritePaths"])
    if name == "domaingate-gateway.service":
        assert one("CapabilityBoundingSet") == ""
        assert writable == {"/var/lib/domaingate"}
    else:
        # Caddy's storage is 0700/0600 owned by caddy: the reconciler keeps CAP_DAC_OVERRIDE
        # only, may write only its state and Caddy's certificates/, and cannot see the rest.
        assert one("CapabilityBoundingSet") == "CAP_DAC_OVERRIDE"
        assert writable == {
            "/var/lib/domaingate",
            "/var/lib/caddy/.local/share/caddy/certificates",
        }
        hidden = " ".join(settings["InaccessiblePaths"])
        for path in ("caddy/acme", "caddy/pki", "/etc/shadow"):
            assert path in hidden


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_allow_far_more_descriptors_than_the_dns_cap(name: str) -> None:
    """The DNS cap holds queries at 256 per process; the unit must leave room above it for the
    connections and files a daemon holds besides (the usual soft limit is 1,024)."""
    settings = _unit_settings((ROOT / "systemd" / name).read_text(encoding="utf-8"))
    (limit,) = settings["LimitNOFILE"]
    assert ":" not in limit  # one number: soft and hard alike
    assert int(limit) >= 8192 >= 8 * MAX_QUERIES_IN_FLIGHT
