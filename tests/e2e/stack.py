"""The end-to-end harness: knot, Pebble, domaingate's daemons, upstream apps and Caddy, on loopback.

`Stack(options)` is a context manager. Entering starts, in order and each waiting for readiness:
knot (tests.knot.Knot: the test zones plus their `test.` parent), the app upstreams (HTTP servers on
unix sockets, one per app, each answering with its own name), Pebble (ACME test CA validating
HTTP-01 / TLS-ALPN-01 for real against Caddy's ports, resolving through knot), domaingate's gateway
and reconciler (`python -m domaingate serve|reconcile`, configured by DOMAINGATE_* variables), and
Caddy running the project's own caddy/Caddyfile. Leaving stops every process it started, in reverse
order, also when starting failed half-way or a test failed; the work directory is removed.

The Caddyfile is adapted only in ports and paths (`render_caddyfile`): the gate's address, Caddy's
http/https/admin ports and loopback bind, its storage root, and the ACME directory (Pebble's URL and
the root of Pebble's own HTTPS listener) as global options. Its sites, TLS policy, forward_auth and
reverse_proxy lines are used exactly as shipped.

Upstreams: DOMAINGATE_UPSTREAM_TEMPLATE is `unix/<workdir>/up/{app}.sock`, which Caddy's
reverse_proxy dials as a unix socket. That gives every app its own upstream with no host names that
would need /etc/hosts or a resolver, and no apps named after port numbers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from psycopg.rows import dict_row

from domaingate.settings import Listen
from tests.knot import Knot, free_port

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "caddy" / "Caddyfile"
HOST = "127.0.0.1"
GATE_IN_CADDYFILE = "127.0.0.1:9123"
PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
ADMIN_TOKEN = "dg_e2e_admin_token_0123456789abcdef"
ACME_EMAIL = "e2e@example.com"
T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call `probe` until it returns something other than None/False; raise TimeoutError naming
    `what` when `timeout` seconds pass. `alive` raises when a process it watches has died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- processes -------------------------------------------------------------------------------


class Process:
    """A child process whose stdout and stderr go to a log file; stopped with SIGTERM."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log
        self._popen: subprocess.Popen[bytes] | None = None
        self.returncodes: list[int] = []

    def start(self) -> None:
        assert self._popen is None, f"{self.name} already running"
        with self.log_path.open("ab") as log:
            log.write(f"=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def check_alive(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._popen.returncode}:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (None if not
        started). Children it left in its session are killed too."""
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)  # stragglers of its own session, if any
        self.returncodes.append(popen.returncode)
        return popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


# --- certificates for Pebble's own HTTPS listener -----------------------------------------------


def make_listener_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf for 127.0.0.1/localhost: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "domaingate e2e listener CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def _https_get(url: str, cafile: Path, timeout: float = 5.0) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
        body: bytes = response.read()
        return body


# --- Pebble -------------------------------------------------------------------------------------


class Pebble:
    """Pebble 2.4 on loopback, validating challenges on Caddy's ports, resolving through knot."""

    def __init__(
        self,
        workdir: Path,
        *,
        dns: Listen,
        http_port: int,
        tls_port: int,
        validity: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.dns = dns
        self.http_port = http_port
        self.tls_port = tls_port
        self.validity = validity
        self.port = 0
        self.management_port = 0
        self.listener_ca = workdir / "ca.pem"
        self.process: Process | None = None
        self._root: str | None = None

    @property
    def directory_url(self) -> str:
        return f"https://{HOST}:{self.port}/dir"

    @property
    def issuer_key(self) -> str:
        """The directory name Caddy stores this CA's certificates under."""
        return f"{HOST}-{self.port}-dir"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca, cert, key = make_listener_certs(self.workdir)
        assert ca == self.listener_ca
        self.port, self.management_port = free_port(), free_port()
        config: dict[str, Any] = {
            "listenAddress": f"{HOST}:{self.port}",
            "managementListenAddress": f"{HOST}:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        conf = self.workdir / "pebble.json"
        conf.write_text(json.dumps({"pebble": config}, indent=2), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
        }
        self.process = Process(
            "pebble",
            [PEBBLE, "-config", str(conf), "-dnsserver", str(self.dns)],
            env=env,
            cwd=self.workdir,
            log=self.workdir / "pebble.log",
        )
        self.process.start()
        wait_until(
            lambda: self._try(self.directory_url),
            timeout=15,
            what="Pebble's ACME directory",
            alive=self.process.check_alive,
        )
        self._root = _https_get(
            f"https://{HOST}:{self.management_port}/roots/0", self.listener_ca
        ).decode()

    def _try(self, url: str) -> bool:
        try:
            _https_get(url, self.listener_ca, timeout=1)
        except (OSError, urllib.error.URLError):
            return False
        return True

    @property
    def root_pem(self) -> str:
        """Pebble's issuing root (new on every start): what clients of Caddy must trust."""
        assert self._root is not None, "Pebble is not started"
        return self._root

    def orders(self) -> int:
        """New orders Pebble has received so far (one log line per order)."""
        assert self.process is not None
        return len(re.findall(r'Added order "', self.process.log_text()))

    def issued(self) -> int:
        """Certificates Pebble has issued so far (one log line per issuance)."""
        assert self.process is not None
        return len(re.findall(r"Issued certificate serial", self.process.log_text()))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# --- Caddy --------------------------------------------------------------------------------------


def render_caddyfile(
    source: str,
    *,
    gate: Listen,
    http_port: int,
    https_port: int,
    admin_port: int,
    storage: Path,
    acme_directory: str,
    acme_root: Path,
) -> str:
    """The project's Caddyfile adapted in ports and paths only (see the module docstring)."""
    if source.count(GATE_IN_CADDYFILE) != 2:
        raise ValueError(f"expected the gate address {GATE_IN_CADDYFILE} twice (ask, forward_auth)")
    text = source.replace(GATE_IN_CADDYFILE, str(gate))
    head = re.search(r"^\{\n", text, flags=re.MULTILINE)
    if head is None:
        raise ValueError("no global options block")
    options = (
        f"\tadmin {HOST}:{admin_port}\n"
        f"\tdefault_bind {HOST}\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {https_port}\n"
        f"\tstorage file_system {{\n\t\troot {storage}\n\t}}\n"
        f"\tacme_ca {acme_directory}\n"
        f"\tacme_ca_root {acme_root}\n"
    )
    return text[: head.end()] + options + text[head.end() :]


class Caddy:
    """Caddy running the project's Caddyfile (rendered for this stack) with `caddy run`."""

    def __init__(
        self,
        workdir: Path,
        *,
        gate: Listen,
        http_port: int,
        https_port: int,
        acme_directory: str,
        acme_root: Path,
    ) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.https_port = https_port
        self.admin_port = free_port()
        self.storage = workdir / "storage"
        self.config = workdir / "Caddyfile"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            render_caddyfile(
                CADDYFILE.read_text(encoding="utf-8"),
                gate=gate,
                http_port=http_port,
                https_port=https_port,
                admin_port=self.admin_port,
                storage=self.storage,
                acme_directory=acme_directory,
                acme_root=acme_root,
            ),
            encoding="utf-8",
        )
        home = workdir / "home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "ACME_EMAIL": ACME_EMAIL,
        }
        self.process = Process(
            "caddy",
            [CADDY, "run", "--adapter", "caddyfile", "--config", str(self.config)],
            env=env,
            cwd=workdir,
            log=workdir / "caddy.log",
        )

    def start(self) -> None:
        self.process.start()
        wait_until(
            self._ready,
            timeout=20,
            what="Caddy's admin API and HTTPS port",
            alive=self.process.check_alive,
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{self.admin_port}/config/", timeout=1
            ) as response:
                if response.status != 200:
                    return False
            with socket.create_connection((HOST, self.https_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cert_dirs(self, name: str) -> list[Path]:
        """Every `certificates/<issuer>/<name>/` directory Caddy has for `name`."""
        return sorted((self.storage / "certificates").glob(f"*/{name}"))


# --- upstream apps ----------------------------------------------------------------------------


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    app_name = ""


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    server: _UnixHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "upstream": self.server.app_name,
                "host": self.headers.get("Host"),
                "path": self.path,
                "app_header": self.headers.get("X-Domaingate-App"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Upstreams:
    """One HTTP server per app on `<directory>/<app>.sock`, answering with the app's name."""

    def __init__(self, directory: Path, apps: tuple[str, ...]) -> None:
        self.directory = directory
        self.apps = apps
        self._servers: list[tuple[_UnixHTTPServer, threading.Thread]] = []

    @property
    def template(self) -> str:
        return f"unix/{self.directory}/{{app}}.sock"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for app in self.apps:
            server = _UnixHTTPServer(str(self.directory / f"{app}.sock"), _UpstreamHandler)
            server.app_name = app
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))

    def stop(self) -> None:
        while self._servers:
            server, thread = self._servers.pop()
            server.shutdown()
            server.server_close()
            thread.join()


# --- domaingate ---------------------------------------------------------------------------------


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: Mapping[str, str]


class Domaingate:
    """domaingate's gateway and reconciler as `python -m domaingate serve|reconcile`."""

    def __init__(self, workdir: Path, settings: Mapping[str, str]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.internal = Listen(HOST, free_port())
        self.api_listen = Listen(HOST, free_port())
        # Never the default: several stacks (and other test runs) share this machine.
        self.reconciler_listen = Listen(HOST, free_port())
        # `DB` in `settings` puts the database elsewhere (a small filesystem, a PostgreSQL URL).
        self.db = Path(settings["DB"]) if "DB" in settings else workdir / "domaingate.db"
        # What DOMAINGATE_DB says: the SQLite file above, or a PostgreSQL URL.
        self.target: Path | str = self.db
        if "://" in settings.get("DB", ""):
            self.target = settings["DB"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOMAINGATE_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.update(
            DOMAINGATE_DB=str(self.target),
            DOMAINGATE_INTERNAL_LISTEN=str(self.internal),
            DOMAINGATE_API_LISTEN=str(self.api_listen),
            DOMAINGATE_RECONCILER_LISTEN=str(self.reconciler_listen),
            DOMAINGATE_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        env.update({f"DOMAINGATE_{k.upper()}": v for k, v in settings.items()})
        self.env = env
        self.gateway = self._process("gateway", "serve")
        self.reconciler = self._process("reconciler", "reconcile")

    def _process(self, name: str, command: str) -> Process:
        return Process(
            name,
            [sys.executable, "-m", "domaingate", command],
            env=self.env,
            cwd=self.workdir,
            log=self.workdir / f"{name}.log",
        )

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "domaingate", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"domaingate {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def create_tenant(self, name: str) -> str:
        out = self.cli("tenant", "create", name)
        token = out.strip()
        # The token alone on stdout (one line), so scripts can capture it.
        assert token and len(out.splitlines()) == 1 and " " not in token, out
        return token

    def start_gateway(self) -> None:
        self.gateway.start()
        wait_until(
            lambda: self.readyz() == 200,
            timeout=20,
            what="the gateway's /readyz",
            alive=self.gateway.check_alive,
        )

    def start_reconciler(self) -> None:
        self.reconciler.start()
        wait_until(
            lambda: "reconciler started" in self.reconciler.log_text(),
            timeout=20,
            what="the reconciler to start",
            alive=self.reconciler.check_alive,
        )

    def _get(self, url: str) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def metrics(self, daemon: str) -> str:
        """The Prometheus text of the "gateway" (internal listener) or the "reconciler"."""
        listen = {"gateway": self.internal, "reconciler": self.reconciler_listen}[daemon]
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def readyz(self) -> int | None:
        """The gateway's readiness answer (None: unreachable)."""
        return self._get(f"http://{self.internal}/readyz")

    def ask(self, name: str) -> int | None:
        """The gate's answer for `name`, as Caddy would ask it (None: unreachable)."""
        return self._get(f"http://{self.internal}/tls-ask?domain={name}")

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str,
        body: Any = None,
        tenant: str | None = None,
    ) -> ApiResponse:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if tenant is not None:
            headers["X-Domaingate-Tenant"] = tenant
        request = urllib.request.Request(
            f"http://{self.api_listen}/api/v1{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
                return ApiResponse(
                    response.status, json.loads(raw) if raw else None, dict(response.headers)
                )
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return ApiResponse(
                    error.code, json.loads(raw) if raw else None, dict(error.headers)
                )

    def db_row(self, hostname: str) -> dict[str, Any] | None:
        """The domain's live row read straight from the database (for when the API is down)."""
        if isinstance(self.target, str):
            with psycopg.connect(self.target, autocommit=True, row_factory=dict_row) as pg:
                found: dict[str, Any] | None = pg.execute(
                    "SELECT * FROM domains WHERE hostname = %s AND status != 'removed'"
                    " ORDER BY id DESC LIMIT 1",
                    (hostname,),
                ).fetchone()
            return found
        with contextlib.closing(
            sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        ) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute(
                "SELECT * FROM domains WHERE hostname = ? AND status != 'removed'"
                " ORDER BY id DESC LIMIT 1",
                (hostname,),
            ).fetchone()
            return None if row is None else dict(row)

    def event_types(self, hostname: str) -> list[str]:
        """Every event of the domains named `hostname`, oldest first, read straight from the
        database."""
        if isinstance(self.target, str):
            with psycopg.connect(self.target, autocommit=True) as pg:
                found = pg.execute(
                    "SELECT e.type FROM domain_events e JOIN domains d ON d.id = e.domain_id"
                    " WHERE d.hostname = %s ORDER BY e.id",
                    (hostname,),
                ).fetchall()
            return [row[0] for row in found]
        with contextlib.closing(
            sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        ) as connection:
            rows = connection.execute(
                "SELECT e.type FROM domain_events e JOIN domains d ON d.id = e.domain_id"
                " WHERE d.hostname = ? ORDER BY e.id",
                (hostname,),
            ).fetchall()
        return [row[0] for row in rows]

    def stop(self) -> None:
        self.reconciler.stop()
        self.gateway.stop()


# --- the TLS client ---------------------------------------------------------------------------


@dataclass
class Fetched:
    certificate: x509.Certificate
    chain_verified: bool
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def tls_request(
    port: int,
    sni: str,
    *,
    root_pem: str | None,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Fetched:
    """Connect to 127.0.0.1:`port` with SNI `sni`, do one GET, return the served certificate
    and the answer. With `root_pem`, the chain and the name are verified against it (Pebble's
    root); without, the certificate is only inspected. Raises ssl.SSLError when the handshake
    fails."""
    if root_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection((HOST, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: {sni}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = http.client.HTTPResponse(tls)
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        return Fetched(
            certificate=x509.load_der_x509_certificate(der),
            chain_verified=root_pem is not None,
            status=response.status,
            headers=dict(response.getheaders()),
            body=body,
        )


def handshake(port: int, sni: str, *, timeout: float = 30.0) -> x509.Certificate:
    """A bare TLS handshake with SNI `sni`; the served leaf (unverified). Raises ssl.SSLError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((HOST, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def cert_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(name) for name in san.value.get_values_for_type(x509.DNSName)]


# --- the whole stack ------------------------------------------------------------------------


@dataclass
class StackOptions:
    """What a test module needs: zones ({zone: records}), apps, Pebble's certificate lifetime
    (seconds; None = Pebble's default), and DOMAINGATE_* settings on top of the test defaults."""

    zones: Mapping[str, str]
    apps: tuple[str, ...] = ("app1", "app2")
    platform_zone: str = "apps.e2e.test"
    cert_validity: int | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


# Short intervals: pending domains checked every second, certificates scanned every second.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "PENDING_FAST_INTERVAL": "1",
    "PENDING_FAST_WINDOW": "3600",
    "PENDING_SLOW_INTERVAL": "1",
    "RETRY_BUDGET": "3600",
    "DRIFT_INTERVAL": "1",
    "DRIFT_GRACE": "3600",
    "CERT_SCAN_INTERVAL": "1",
    "EDGE_IPV4": HOST,
    "ALLOWED_CAS": "letsencrypt.org",
    "LOG_LEVEL": "INFO",
}


# What /tls-ask answers for a domain in each status (SPEC, "States"), and how long a status the
# reconciler wrote may take to reach the gate (SPEC, "The gate": within 1 s).
GATE_ANSWER: Mapping[str, int] = {
    "pending": 403,
    "verified": 200,
    "active": 200,
    "expiring": 200,
    "failed": 403,
}
GATE_LAG = 1.0


class Stack:
    """Everything, started in order on entry and stopped in reverse order on exit."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        # Short path: unix sockets (knot's control socket, the upstreams) max out at 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="dg-e2e-", dir="/tmp"))
        self._stops: list[Callable[[], None]] = []
        self.knot = Knot(options.zones)
        self.upstreams = Upstreams(self.workdir / "up", options.apps)
        self.http_port = free_port()
        self.https_port = free_port()
        self.pebble: Pebble
        self.domaingate: Domaingate
        self.caddy: Caddy

    # lifecycle

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.knot.start()
        self._stops.append(self.knot.stop)
        self.upstreams.start()
        self._stops.append(self.upstreams.stop)
        self.pebble = Pebble(
            self.workdir / "pebble",
            dns=self.knot.listen,
            http_port=self.http_port,
            tls_port=self.https_port,
            validity=self.options.cert_validity,
        )
        self._stops.append(self.pebble.stop)
        self.pebble.start()
        settings = {
            **DEFAULT_SETTINGS,
            "RESOLVERS": str(self.knot.listen),
            "PLATFORM_ZONE": self.options.platform_zone,
            "CADDY_STORAGE": str(self.workdir / "caddy" / "storage"),
            "UPSTREAM_TEMPLATE": self.upstreams.template,
            **self.options.settings,
        }
        self.domaingate = Domaingate(self.workdir / "domaingate", settings)
        self.caddy = Caddy(
            self.workdir / "caddy",
            gate=self.domaingate.internal,
            http_port=self.http_port,
            https_port=self.https_port,
            acme_directory=self.pebble.directory_url,
            acme_root=self.pebble.listener_ca,
        )
        self.domaingate.cli("migrate")
        self._stops.append(self.domaingate.stop)
        self.domaingate.start_gateway()
        self.domaingate.start_reconciler()
        self._stops.append(self.caddy.stop)
        self.caddy.start()

    def close(self) -> None:
        errors: list[BaseException] = []
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except BaseException as error:  # keep stopping the rest
                errors.append(error)
        # E2E_KEEP_WORKDIR=1 keeps the logs, configs and storage for a post-mortem.
        if os.environ.get("E2E_KEEP_WORKDIR") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]

    def processes(self) -> list[Process]:
        found: list[Process] = []
        for name in ("pebble", "domaingate", "caddy"):
            part = getattr(self, name, None)
            if isinstance(part, Pebble) and part.process is not None:
                found.append(part.process)
            elif isinstance(part, Domaingate):
                found += [part.gateway, part.reconciler]
            elif isinstance(part, Caddy):
                found.append(part.process)
        return found

    def log_report(self, lines: int = 60) -> str:
        """The tail of every process log, for a failing test's report."""
        parts = [f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(lines)}" for p in self.processes()]
        parts.append(f"--- knotd ---\n{self.knot.log[-3000:]}")
        return "\n".join(parts)

    # helpers for tests

    def set_zone(self, zone: str, records: str) -> None:
        self.knot.set_zone(zone, records)

    def https(
        self, sni: str, path: str = "/", *, headers: Mapping[str, str] | None = None
    ) -> Fetched:
        """GET https://`sni``path` through Caddy, trusting only Pebble's root."""
        return tls_request(
            self.https_port, sni, root_pem=self.pebble.root_pem, path=path, headers=headers
        )

    def handshake(self, sni: str) -> x509.Certificate:
        return handshake(self.https_port, sni)

    def tenant(self, name: str) -> str:
        return self.domaingate.create_tenant(name)

    def attach(self, token: str, domain: str, app: str) -> ApiResponse:
        return self.domaingate.api(
            "POST", "/domains", token=token, body={"domain": domain, "app": app}
        )

    def domain(self, token: str, domain: str) -> dict[str, Any]:
        response = self.domaingate.api("GET", f"/domains/{domain}", token=token)
        assert response.status == 200, (response.status, response.body)
        body: dict[str, Any] = response.body
        return body

    def wait_status(
        self, token: str, domain: str, *statuses: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll the API until the domain's status is one of `statuses`; the domain object."""
        seen: list[str] = []

        def probe() -> dict[str, Any] | None:
            current = self.domain(token, domain)
            if not seen or seen[-1] != current["status"]:
                seen.append(current["status"])
            return current if current["status"] in statuses else None

        try:
            found = wait_until(probe, timeout=timeout, what=f"{domain} to be {statuses}")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; statuses seen: {seen}") from None
        # The reconciler's move reaches the gate within 1 s (SPEC, "The gate"): the gate polls the
        # database, so right after the API shows the new status the gate may not agree yet, and
        # a handshake in between would be denied. Wait for it, holding the daemon to that bound.
        answers = {GATE_ANSWER.get(status) for status in statuses}
        if len(answers) == 1 and None not in answers and self.domaingate.gateway.running:
            (answer,) = answers
            wait_until(
                lambda: self.domaingate.ask(domain) == answer,
                timeout=GATE_LAG,
                interval=0.05,
                what=f"the gate to answer {answer} for {domain} ({found['status']})",
            )
        return found

    @contextlib.contextmanager
    def no_new_orders(self) -> Iterator[None]:
        """Assert that Pebble receives no new order and issues nothing inside the block."""
        orders, issued = self.pebble.orders(), self.pebble.issued()
        yield
        time.sleep(0.5)  # let a stray order, if any, reach Pebble's log
        assert (self.pebble.orders(), self.pebble.issued()) == (orders, issued)


# --- flows shared by the test modules -----------------------------------------------------------


def platform_records(apps: tuple[str, ...], zone: str = "e2e.test") -> str:
    """Zone-file lines for the platform's CNAME targets `{app}.apps.<zone>` → 127.0.0.1.

    The targets live in the same zone as the tenants' names on purpose: neither knot nor Pebble's
    resolver follows a CNAME into another zone (see notes/local-stack.md)."""
    del zone
    return "".join(f"{app}.apps A {HOST}\n" for app in apps)


SPEC_EVENTS = frozenset(
    {"domain.verified", "domain.active", "domain.expiring", "domain.failed", "domain.removed"}
)


def moves(stack: Stack, token: str, domain: str) -> list[str]:
    """The domain's state-move events (the spec's five types), oldest first."""
    response = stack.domaingate.api("GET", f"/domains/{domain}/events", token=token)
    assert response.status == 200, response.body
    return [e["type"] for e in response.body["events"] if e["type"] in SPEC_EVENTS]


def rfc3339(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def activate(
    stack: Stack, token: str, domain: str, app: str, *, zone: str, records: str
) -> tuple[Fetched, dict[str, Any]]:
    """Attach `domain`, publish `records` as `zone`, wait for `verified`, fetch it through Caddy
    (Pebble issues), wait for `active`. Returns the first fetch and the active domain object."""
    attached = stack.attach(token, domain, app)
    assert attached.status == 201, attached.body
    stack.set_zone(zone, records)
    stack.wait_status(token, domain, "verified", timeout=30)
    fetched = stack.https(domain, "/")
    assert fetched.status == 200, fetched.body
    active = stack.wait_status(token, domain, "active", timeout=30)
    assert rfc3339(active["cert_expires_at"]) == fetched.certificate.not_valid_after_utc
    return fetched, active
