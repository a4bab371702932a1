"""What the pages' browser tests run against: knot on loopback as the only resolver, domaingate's
gateway and reconciler as real processes (`python -m domaingate serve|reconcile`) on free
loopback ports, and Debian's chromium driven by Playwright (never a downloaded browser).

The reconciler runs with one-second intervals, so a record published in knot turns a pending
domain `verified` within seconds, and a certificate written to its storage turns it `active`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domaingate.settings import Listen
from tests.reconciler.conftest import make_issuer, make_leaf_pem, store_cert
from tests.support.domaingate import run_cli
from tests.support.knot import Knot
from tests.support.net import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Everything that would reach the network or a service on its own stays off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "ui-admin-token-0123456789abcdef"
PLATFORM = "apps.test"
EDGE_IPV4 = "192.0.2.10"
PER_APP = 5
ISSUER_KEY = "acme-v02.api.letsencrypt.org-directory"


@dataclass
class Reply:
    status: int
    body: Any


class Stack:
    """knot, the gateway and the reconciler; `url(path)` is the API listener's address."""

    def __init__(self, workdir: Path, zones: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.db = workdir / "domaingate.db"
        self.storage = workdir / "caddy"
        (self.storage / "certificates").mkdir(parents=True)
        self.knot = Knot(zones)
        self.api_listen = Listen(HOST, free_port())
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.issuer = make_issuer("UI Test CA", "domaingate tests")
        self.env: dict[str, str] = {}
        # The platform's zone as served: a CNAME target is added for each app registered.
        self.platform_records = zones.get(PLATFORM, "")

    def start(self) -> None:
        self.knot.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOMAINGATE_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        settings = {
            "DB": str(self.db),
            "API_LISTEN": str(self.api_listen),
            "INTERNAL_LISTEN": str(Listen(HOST, free_port())),
            "RECONCILER_LISTEN": str(Listen(HOST, free_port())),
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "RESOLVERS": str(self.knot.listen),
            "PLATFORM_ZONE": PLATFORM,
            "EDGE_IPV4": EDGE_IPV4,
            "CADDY_STORAGE": str(self.storage),
            "PENDING_FAST_INTERVAL": "1",
            "CERT_SCAN_INTERVAL": "1",
            "DNS_TIMEOUT": "2",
            "MAX_DOMAINS_PER_APP": str(PER_APP),
        }
        env.update({f"DOMAINGATE_{key}": value for key, value in settings.items()})
        self.env = env
        self.cli("migrate")
        self._spawn("gateway", "serve")
        self._wait(lambda: self._status("/ui/") == 200, "the gateway's API listener")
        self._spawn("reconciler", "reconcile")
        self._wait(lambda: "reconciler started" in self.log("reconciler"), "the reconciler")

    def stop(self) -> None:
        for name, process in reversed(self.processes.items()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.processes[name] = process
        self.knot.stop()

    def _spawn(self, name: str, command: str) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "domaingate", command],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait(self, probe: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"http://{self.api_listen}{path}"

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def cli(self, *args: str) -> str:
        return run_cli(self.env, self.workdir, *args)

    def tenant(self, name: str, *apps: str) -> str:
        """A new tenant's token, made as an operator would (`domaingate tenant create`), with
        `apps` registered for it (app names are unique across tenants)."""
        token = self.cli("tenant", "create", name).strip()
        self.register_apps(name, *apps)
        return token

    def register_apps(self, tenant: str, *apps: str) -> None:
        """Register `apps` for `tenant` as the platform does (`domaingate apps add`) and publish
        each one's CNAME target `{app}.{PLATFORM}` in knot, pointing at the edge."""
        for app in apps:
            self.cli("apps", "add", tenant, app)
            self.platform_records += f"{app} A {EDGE_IPV4}\n"
        if apps:
            self.knot.set_zone(PLATFORM, self.platform_records)

    def api(self, method: str, path: str, token: str, body: Any = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.url("/api/v1" + path), data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
                return Reply(response.status, json.loads(raw) if raw else None)
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return Reply(error.code, json.loads(raw) if raw else None)

    def attach(self, token: str, domain: str, app: str) -> dict[str, Any]:
        reply = self.api("POST", "/domains", token, {"domain": domain, "app": app})
        assert reply.status == 201, reply
        assert isinstance(reply.body, dict)
        return reply.body

    def status(self, hostname: str) -> str | None:
        with contextlib.closing(sqlite3.connect(self.db, timeout=5)) as conn:
            row = conn.execute(
                "SELECT status FROM domains WHERE hostname = ? AND status != 'removed'",
                (hostname,),
            ).fetchone()
        return None if row is None else str(row[0])

    def wait_status(self, hostname: str, status: str, timeout: float = 30.0) -> None:
        self._wait(lambda: self.status(hostname) == status, f"{hostname} to be {status}", timeout)

    def store_certificate(self, hostname: str, *, days_left: float, lifetime_days: float) -> None:
        """A certificate for `hostname` in the reconciler's Caddy storage, as Caddy writes one."""
        now = time.time()
        end = now + days_left * 86400
        pem = make_leaf_pem(self.issuer, [hostname], end - lifetime_days * 86400, end)
        store_cert(self.storage, ISSUER_KEY, hostname, pem)

    def fail(self, hostname: str) -> None:
        """Mark a live domain failed with no further checks, as a spent retry budget leaves it."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=5)) as conn, conn:
            conn.execute(
                "UPDATE domains SET status = 'failed', next_check_at = NULL,"
                " last_check_code = 'nxdomain',"
                " last_check_message = ? WHERE hostname = ? AND status != 'removed'",
                (f"{hostname} does not exist in DNS.", hostname),
            )
