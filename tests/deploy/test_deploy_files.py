"""The deployment files are checked by the real tools: `caddy validate` / `caddy adapt` for the
Caddyfiles, on Debian's Caddy 2.6 and on the current 2.11 alike (tests/caddy_binaries.py), and
`systemd-analyze verify` / `security` for the units and Caddy's drop-in.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and
/opt/domaingate/venv/bin/domaingate exists only on an installed host. So the test verifies a copy
of each unit in a temporary directory where only that path is rewritten (to the `true` binary);
every other line is verified as shipped, and the shipped ExecStart is asserted separately.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from domaingate.dns.inflight import MAX_QUERIES_IN_FLIGHT
from tests.support.caddy_binaries import CURRENT, DEBIAN, VERSIONS, CaddyBinary, caddy_binary
from tests.support.domaingate import clean_environ, run_domaingate

# Real caddy, systemd-analyze and domaingate processes.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "caddy" / "Caddyfile"
CADDYFILE_LOCAL = ROOT / "caddy" / "Caddyfile.local"
UNITS = {
    "domaingate-gateway.service": "serve",
    "domaingate-reconciler.service": "reconcile",
}
# What Caddy's own unit is ordered after, and how (systemd/caddy.service.d/domaingate.conf).
CADDY_DROP_IN = ROOT / "systemd" / "caddy.service.d" / "domaingate.conf"
# Where Debian's caddy package (and Caddy's own) installs caddy.service.
CADDY_UNITS = (
    Path("/lib/systemd/system/caddy.service"),
    Path("/usr/lib/systemd/system/caddy.service"),
)
UNIT_TYPES = {"domaingate-gateway.service": "notify", "domaingate-reconciler.service": "exec"}
MAX_EXPOSURE = 2.0
INSTALLED_BINARY = "/opt/domaingate/venv/bin/domaingate"
CONFIG = "/etc/domaingate/domaingate.toml"
GATE_ASK = "http://127.0.0.1:9123/tls-ask"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture(params=VERSIONS, ids=[f"caddy{v}" for v in VERSIONS])
def caddy(request: pytest.FixtureRequest) -> CaddyBinary:
    """Each Caddyfile test runs once on Debian's Caddy 2.6 and once on the current 2.11."""
    minor: str = request.param
    return caddy_binary(minor)


def _caddy(caddy: CaddyBinary, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `caddy` with no environment but a home in tmp_path: the shipped files must not need a
    variable set."""
    home = tmp_path / "home"
    return subprocess.run(
        [str(caddy.path), *args],
        env={
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _adapt(caddy: CaddyBinary, tmp_path: Path, path: Path) -> dict[str, Any]:
    result = _caddy(caddy, tmp_path, "adapt", "--adapter", "caddyfile", "--config", str(path))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _validate(caddy: CaddyBinary, tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return _caddy(caddy, tmp_path, "validate", "--adapter", "caddyfile", "--config", str(path))


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


def _handlers(node: Any) -> list[dict[str, Any]]:
    """The request's handlers in document order: every handler object, but not those a
    reverse_proxy runs on its upstream's answer (`handle_response`, how forward_auth copies
    headers)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "handler" in node:
            found.append(node)
            if node["handler"] == "reverse_proxy":
                return found
        for value in node.values():
            found.extend(_handlers(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_handlers(value))
    return found


def _header_ops(objects: list[dict[str, Any]], op: str) -> list[str]:
    """The header names the `headers` handlers among `objects` apply `op` (set, delete) to."""
    request_ops = (
        obj.get("request", {}).get(op, []) for obj in objects if obj.get("handler") == "headers"
    )
    return sorted(name for names in request_ops for name in names)


def _log_levels(stderr: str) -> set[str]:
    """The levels of Caddy's JSON log lines."""
    levels = set()
    for line in stderr.splitlines():
        if line.startswith("{"):
            levels.add(str(json.loads(line).get("level")))
    return levels


@pytest.mark.parametrize("path", [CADDYFILE, CADDYFILE_LOCAL], ids=["Caddyfile", "local"])
def test_caddy_validate_accepts_the_caddyfiles(
    caddy: CaddyBinary, tmp_path: Path, path: Path
) -> None:
    """As shipped, with no environment set (no ACME e-mail either), on both versions."""
    result = _validate(caddy, tmp_path, path)
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    # `caddy validate` warns when a Caddyfile is not in `caddy fmt` form, and on deprecated
    # options; the shipped files give neither version anything to warn about.
    assert "not formatted" not in result.stderr
    assert _log_levels(result.stderr) == {"info"}, result.stderr


@pytest.mark.parametrize("path", [CADDYFILE, CADDYFILE_LOCAL], ids=["Caddyfile", "local"])
def test_caddyfiles_use_no_environment_variable(path: Path) -> None:
    """`{$VAR}` with VAR unset is a parse error in some places (`email {$ACME_EMAIL}` on both
    versions): the shipped files take nothing from the environment."""
    assert "{$" not in path.read_text(encoding="utf-8")


def test_acme_email_is_optional(caddy: CaddyBinary, tmp_path: Path) -> None:
    """Without an e-mail the policy names no issuer: Caddy's defaults apply. The commented
    `email` line, uncommented, gives both issuers the address; 2.6 adapts ZeroSSL to its own
    `zerossl` module, 2.11 to a second `acme` issuer at ZeroSSL's directory."""
    policy = _adapt(caddy, tmp_path, CADDYFILE)["apps"]["tls"]["automation"]["policies"][0]
    assert "issuers" not in policy

    text = CADDYFILE.read_text(encoding="utf-8")
    assert text.count("\t# email ops@example.com\n") == 1
    with_email = tmp_path / "Caddyfile"
    with_email.write_text(text.replace("# email ", "email "), encoding="utf-8")
    assert _validate(caddy, tmp_path, with_email).returncode == 0
    policy = _adapt(caddy, tmp_path, with_email)["apps"]["tls"]["automation"]["policies"][0]
    issuers = [(i["module"], i.get("ca"), i["email"]) for i in policy["issuers"]]
    if caddy.minor == DEBIAN:
        assert issuers == [
            ("acme", None, "ops@example.com"),
            ("zerossl", None, "ops@example.com"),
        ]
    else:
        assert issuers == [
            ("acme", None, "ops@example.com"),
            ("acme", "https://acme.zerossl.com/v2/DV90", "ops@example.com"),
        ]


def test_removed_rate_limit_is_refused_by_current_caddy(caddy: CaddyBinary, tmp_path: Path) -> None:
    """on_demand_tls `interval`/`burst` (deprecated in 2.7.4, an error from 2.9): 2.6 still
    takes them, 2.11 refuses the Caddyfile. The shipped files do without them."""
    for path in (CADDYFILE, CADDYFILE_LOCAL):
        assert not re.search(r"^\s*(interval|burst)\b", path.read_text(encoding="utf-8"), re.M)
    text = CADDYFILE.read_text(encoding="utf-8")
    ask = f"\t\task {GATE_ASK}\n"
    assert text.count(ask) == 1
    limited = tmp_path / "Caddyfile"
    limited.write_text(text.replace(ask, ask + "\t\tinterval 1m\n\t\tburst 10\n"), encoding="utf-8")
    result = _validate(caddy, tmp_path, limited)
    if caddy.minor == DEBIAN:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        assert "the on_demand_tls 'interval' option is no longer supported" in result.stderr


def _check_wiring(caddy: CaddyBinary, config: dict[str, Any]) -> None:
    automation = config["apps"]["tls"]["automation"]
    # One Caddyfile `ask` line, two JSON spellings: 2.6's `ask` field, and from 2.8 on the
    # `permission` module of type http. No rate limit on either.
    if caddy.minor == DEBIAN:
        assert automation["on_demand"] == {"ask": GATE_ASK}
    else:
        assert caddy.minor == CURRENT
        assert automation["on_demand"] == {"permission": {"module": "http", "endpoint": GATE_ASK}}
    assert [p.get("on_demand") for p in automation["policies"]] == [True]

    handlers = _handlers(config["apps"]["http"])
    assert _header_ops(handlers, "delete") == ["X-Domaingate-App", "X-Domaingate-Upstream"]
    proxies = [h for h in handlers if h["handler"] == "reverse_proxy"]
    assert len(proxies) == 2, proxies
    auth, app = proxies
    # forward_auth is a reverse_proxy that rewrites to GET /route on the gate ...
    assert auth["upstreams"] == [{"dial": "127.0.0.1:9123"}]
    assert auth["rewrite"] == {"method": "GET", "uri": "/route"}
    copying = _walk(auth["handle_response"])
    assert _header_ops(copying, "set") == ["X-Domaingate-App", "X-Domaingate-Upstream"]
    # 2.11's copy_headers also drops the client's copy of a header the gate's answer lacks; 2.6
    # leaves that to the Caddyfile's own `request_header -…` lines (checked above for both).
    copy_drops = [] if caddy.minor == DEBIAN else ["X-Domaingate-App", "X-Domaingate-Upstream"]
    assert _header_ops(copying, "delete") == copy_drops
    # ... and the request then goes where the gate said.
    assert app["upstreams"] == [{"dial": "{http.request.header.X-Domaingate-Upstream}"}]
    # The client's own routing headers are dropped before forward_auth runs.
    order = [
        h["handler"]
        for h in handlers
        if h["handler"] == "reverse_proxy" or "delete" in h.get("request", {})
    ]
    assert order == ["headers", "headers", "reverse_proxy", "reverse_proxy"]


def test_production_caddyfile_wiring(caddy: CaddyBinary, tmp_path: Path) -> None:
    config = _adapt(caddy, tmp_path, CADDYFILE)
    _check_wiring(caddy, config)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]


def test_local_caddyfile_wiring(caddy: CaddyBinary, tmp_path: Path) -> None:
    config = _adapt(caddy, tmp_path, CADDYFILE_LOCAL)
    _check_wiring(caddy, config)
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


def _caddy_unit() -> Path:
    found = [path for path in CADDY_UNITS if path.is_file()]
    assert found, f"no caddy.service in {[str(p) for p in CADDY_UNITS]} (apt-get install caddy)"
    return found[0]


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """Both units, and Caddy's own unit with the drop-in beside it, as systemd would load them
    from /etc/systemd/system (verify reads a unit's drop-ins from its directory)."""
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
    caddy_unit = tmp_path / "caddy.service"
    shutil.copyfile(_caddy_unit(), caddy_unit)
    (tmp_path / "caddy.service.d").mkdir()
    shutil.copyfile(CADDY_DROP_IN, tmp_path / "caddy.service.d" / CADDY_DROP_IN.name)
    copies.append(str(caddy_unit))
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


def test_caddy_starts_after_the_gateway_is_ready() -> None:
    """The gateway is Type=notify (ready = allowlist loaded, listeners open: the gateway's
    side is tests/gate/test_readiness.py); Caddy's drop-in orders Caddy after it and pulls it in,
    without tying Caddy's life to it: a gateway restart must not restart Caddy."""
    drop_in = _unit_settings(CADDY_DROP_IN.read_text(encoding="utf-8"))
    assert drop_in == {
        "Wants": ["domaingate-gateway.service"],
        "After": ["domaingate-gateway.service"],
    }
    assert "[Unit]" in CADDY_DROP_IN.read_text(encoding="utf-8")
    gateway = _unit_settings((ROOT / "systemd" / "domaingate-gateway.service").read_text("utf-8"))
    assert gateway["Type"] == ["notify"]
    assert "caddy.service" in gateway["Before"]
    # The documented install steps put the drop-in where systemd reads it.
    steps = (ROOT / "systemd" / "domaingate-gateway.service").read_text(encoding="utf-8")
    assert (
        "install -D -m 0644 caddy.service.d/domaingate.conf "
        "/etc/systemd/system/caddy.service.d/domaingate.conf"
    ) in steps


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_exposure_is_at_most_2(name: str) -> None:
    """`systemd-analyze security` judges the shipped unit as it stands (offline: no running
    systemd needed); 0 is fully locked down, 10 fully exposed."""
    assert SYSTEMD_ANALYZE is not None, "systemd-analyze is not installed (apt-get install systemd)"
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(ROOT / "systemd" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


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
    result = run_domaingate(clean_environ(), tmp_path, *args)
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
    assert one("Type") == UNIT_TYPES[name]
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
