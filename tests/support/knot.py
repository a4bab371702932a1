"""Real authoritative DNS for tests: knot on 127.0.0.1.

`Knot` runs `knotd -c <tmp>/knot.conf` in the foreground on a free loopback port and serves zones
given as text. The harness writes each zone's SOA (bumping its serial on every change) and, when
missing, an apex NS. knot answers REFUSED outside its zones, so it also serves each zone's
top-level label (`test.` for `acme.test`) with delegations, letting a CAA climb reach the top.
`Knot.expire_zone` makes a zone answer SERVFAIL.

`knot_fixture(zones, scope=...)` builds a fixture serving fixed zones at a wider scope; the
`knot_factory` fixture (tests.support.fixtures) starts any number of servers for one test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.zone
import pytest

from domaingate.settings import Listen
from tests.support.net import HOST, free_port
from tests.support.wait import wait_until

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
READY_TIMEOUT = 10.0

Scope = Literal["session", "package", "module", "class", "function"]


def _zone_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


class Knot:
    """One knotd process serving `zones` ({zone name: records in zone-file syntax})."""

    def __init__(self, zones: Mapping[str, str]) -> None:
        self._zones = {_zone_name(name): text for name, text in zones.items()}
        self._files: dict[str, str] = {}  # zone name → rendered file content (without SOA)
        self._serials: dict[str, int] = {}
        # Short path: knot's control socket lives in it, and unix socket paths max out at 108.
        self.workdir = Path(tempfile.mkdtemp(prefix="knot-", dir="/tmp"))
        self.conf = self.workdir / "knot.conf"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def listen(self) -> Listen:
        return Listen(HOST, self.port)

    @property
    def log(self) -> str:
        path = self.workdir / "knotd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        for name in ("run", "db", "zones"):
            (self.workdir / name).mkdir(exist_ok=True)
        self._write_zones()
        problem = ""
        for _ in range(3):  # another process may take the port between probe and bind
            self.port = free_port()
            self._write_conf()
            log = (self.workdir / "knotd.log").open("ab")
            try:
                self._process = subprocess.Popen(
                    [KNOTD, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
                )
            finally:
                log.close()
            try:
                self._wait_served(self._serials)
                return self
            except RuntimeError as exc:
                problem = str(exc)
                self._kill()
        self.stop()
        raise RuntimeError(f"knotd did not start: {problem}")

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def set_zone(self, name: str, records: str) -> None:
        """Serve `records` as zone `name` (new or replaced); returns once knot serves them."""
        name = _zone_name(name)
        known = set(self._files)
        self._zones[name] = records
        changed = self._write_zones()
        if set(self._files) != known:
            self._write_conf()
            self._knotc("reload")
        old = [zone for zone in changed if zone in known]
        if old:
            self._knotc("zone-reload", *old)
        self._wait_served({zone: self._serials[zone] for zone in changed})

    def expire_zone(self, name: str) -> None:
        """Make knot answer SERVFAIL for zone `name`, as an authoritative server does for a zone
        it holds but cannot serve (a secondary cut off from its primary past the SOA expiry, a
        zone file that failed to load); returns once it does. For good: knot will not reload an
        expired zone, so `set_zone` cannot bring it back."""
        name = _zone_name(name)
        self._knotc("zone-purge", "-f", name, "+expire")

        def failing() -> bool:
            response = self._soa(name)
            return response is not None and response.rcode() == dns.rcode.SERVFAIL

        try:
            wait_until(failing, timeout=READY_TIMEOUT, interval=0.02, what=f"{name} to fail")
        except TimeoutError:
            raise RuntimeError(
                f"zone {name} still served after expiring:\n{self.log[-2000:]}"
            ) from None

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _knotc(self, *command: str) -> None:
        result = subprocess.run(
            [KNOTC, "-c", str(self.conf), "-b", *command],
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"knotc {' '.join(command)}: {result.stdout}{result.stderr}")

    def _rendered(self) -> dict[str, str]:
        files = {name: self._render(name, text) for name, text in self._zones.items()}
        for tld in sorted({name.rsplit(".", 1)[-1] for name in self._zones} - set(self._zones)):
            children = sorted(name for name in self._zones if name.endswith("." + tld))
            delegations = "".join(f"{child}. NS ns.{tld}.\n" for child in children)
            files[tld] = f"@ NS ns.{tld}.\nns A {HOST}\n{delegations}"
        return files

    def _render(self, name: str, text: str) -> str:
        origin = dns.name.from_text(name)
        zone = dns.zone.from_text(
            f"$ORIGIN {origin}\n$TTL 60\n{text}\n", origin, relativize=False, check_origin=False
        )
        if zone.get_rdataset(origin, dns.rdatatype.SOA) is not None:
            raise ValueError(f"zone {name}: leave the SOA out, the harness writes it")
        has_ns = zone.get_rdataset(origin, dns.rdatatype.NS) is not None
        ns = "" if has_ns else f"@ NS ns.{name.rsplit('.', 1)[-1]}.\n"
        return f"{ns}{text}\n"

    def _write_zones(self) -> list[str]:
        """Write every zone whose content changed; returns their names."""
        changed = []
        for name, body in self._rendered().items():
            if self._files.get(name) == body:
                continue
            serial = self._serials.get(name, 0) + 1
            head = (
                f"$ORIGIN {name}.\n$TTL 60\n"
                f"@ SOA ns.{name}. hostmaster.{name}. {serial} 3600 600 86400 60\n"
            )
            (self.workdir / "zones" / f"{name}.zone").write_text(head + body, encoding="utf-8")
            self._files[name] = body
            self._serials[name] = serial
            changed.append(name)
        return changed

    def _write_conf(self) -> None:
        root = self.workdir
        zones = "".join(f"  - domain: {name}\n" for name in sorted(self._files))
        self.conf.write_text(
            f"""server:
    rundir: "{root}/run"
    pidfile: "{root}/run/knot.pid"
    listen: [ {HOST}@{self.port} ]
log:
  - target: stderr
    any: info
database:
    storage: "{root}/db"
template:
  - id: default
    storage: "{root}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{zones}""",
            encoding="utf-8",
        )

    def _wait_served(self, serials: Mapping[str, int]) -> None:
        """Block until every zone answers its SOA with the expected serial."""
        pending = dict(serials)

        def served() -> bool:
            for name, serial in list(pending.items()):
                if self._soa_serial(name) == serial:
                    del pending[name]
            return not pending

        try:
            wait_until(
                served, timeout=READY_TIMEOUT, interval=0.02, what="the zones", alive=self._alive
            )
        except TimeoutError:
            raise RuntimeError(f"zones {sorted(pending)} not served:\n{self.log[-2000:]}") from None

    def _alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"knotd exited:\n{self.log[-2000:]}")

    def _soa(self, name: str) -> dns.message.Message | None:
        query = dns.message.make_query(f"{name}.", dns.rdatatype.SOA)
        try:
            return dns.query.udp(query, HOST, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return None

    def _soa_serial(self, name: str) -> int | None:
        response = self._soa(name)
        if response is None or response.rcode() != dns.rcode.NOERROR:
            return None
        for rrset in response.answer:
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
                    return int(rdata.serial)
        return None


def knot_fixture(zones: Mapping[str, str], *, scope: Scope = "module") -> Any:
    """A fixture serving `zones` for `scope`, e.g. `dns_server = knot_fixture({...})`."""

    def serve() -> Iterator[Knot]:
        with Knot(zones) as server:
            yield server

    return pytest.fixture(scope=scope)(serve)
