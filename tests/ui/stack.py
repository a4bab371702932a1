"""What the pages' browser tests run against: knot on loopback as the only resolver, domaingate's
gateway and reconciler started by the suite's launcher (tests.support.domaingate) on free
loopback ports, and Debian's chromium driven by Playwright (never a downloaded browser).

The reconciler runs with one-second intervals, so a record published in knot turns a pending
domain `verified` within seconds, and a certificate written to its storage turns it `active`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.reconciler.conftest import make_issuer, make_leaf_pem, store_cert
from tests.support.domaingate import Domaingate
from tests.support.knot import Knot
from tests.support.wait import wait_until

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
PLATFORM = "apps.test"
EDGE_IPV4 = "192.0.2.10"
PER_APP = 5
ISSUER_KEY = "acme-v02.api.letsencrypt.org-directory"


class Stack:
    """knot, the gateway and the reconciler; `url(path)` is the API listener's address."""

    def __init__(self, workdir: Path, zones: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.storage = workdir / "caddy"
        (self.storage / "certificates").mkdir(parents=True)
        self.knot = Knot(zones)
        self._domaingate: Domaingate | None = None
        self.issuer = make_issuer("UI Test CA", "domaingate tests")
        # The platform's zone as served: a CNAME target is added for each app registered.
        self.platform_records = zones.get(PLATFORM, "")

    def start(self) -> None:
        self.knot.start()
        self._domaingate = Domaingate(
            self.workdir,
            {
                "RESOLVERS": str(self.knot.listen),
                "PLATFORM_ZONE": PLATFORM,
                "EDGE_IPV4": EDGE_IPV4,
                "CADDY_STORAGE": str(self.storage),
                "PENDING_FAST_INTERVAL": "1",
                "CERT_SCAN_INTERVAL": "1",
                "DNS_TIMEOUT": "2",
                "MAX_DOMAINS_PER_APP": str(PER_APP),
            },
        )
        self.cli("migrate")
        self.domaingate.start_gateway()
        self.domaingate.start_reconciler()

    def stop(self) -> None:
        # The launcher stops only the daemons that did start; none exists if knot failed first.
        if self._domaingate is not None:
            self._domaingate.stop()
        self.knot.stop()

    @property
    def domaingate(self) -> Domaingate:
        assert self._domaingate is not None, "the stack is not started"
        return self._domaingate

    @property
    def db(self) -> Path:
        return self.domaingate.db

    def url(self, path: str) -> str:
        return f"http://{self.domaingate.api_listen}{path}"

    def cli(self, *args: str) -> str:
        return self.domaingate.cli(*args)

    def tenant(self, name: str, *apps: str) -> str:
        """A new tenant's token, made as an operator would (`domaingate tenant create`), with
        `apps` registered for it (app names are unique across tenants)."""
        token = self.domaingate.create_tenant(name)
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

    def attach(self, token: str, domain: str, app: str) -> dict[str, Any]:
        reply = self.domaingate.api(
            "POST", "/domains", token=token, body={"domain": domain, "app": app}
        )
        assert reply.status == 201, (reply.status, reply.body)
        assert isinstance(reply.body, dict)
        return reply.body

    def status(self, hostname: str) -> str | None:
        row = self.domaingate.db_row(hostname)
        return None if row is None else str(row["status"])

    def wait_status(self, hostname: str, status: str, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.status(hostname) == status,
            timeout=timeout,
            what=f"{hostname} to be {status}",
            alive=self._alive,
        )

    def _alive(self) -> None:
        self.domaingate.gateway.check_alive()
        self.domaingate.reconciler.check_alive()

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
