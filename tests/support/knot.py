"""Real authoritative DNS for tests: knot on 127.0.0.1, plus a resolver address that never answers.

`Knot` runs `knotd -c <tmp>/knot.conf` in the foreground on a free loopback port and serves zones
given as text. The harness writes each zone's SOA (bumping its serial on every change) and, when
missing, an apex NS. knot answers REFUSED outside its zones, so it also serves each zone's
top-level label (`test.` for `acme.test`) with delegations, letting a CAA climb reach the top.

Fixtures (import them into a conftest.py): `knot_factory` starts any number of independent
servers and stops them all at teardown; `blackhole` is a UDP address that reads and drops every
query (a `Blackhole(reply=...)` built by hand answers garbage instead). `Knot.expire_zone` makes a
zone answer SERVFAIL.
`knot_fixture(zones, scope=...)` builds a fixture serving fixed zones at a wider scope.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0

Scope = Literal["session", "package", "module", "class", "function"]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (knot listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


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
        deadline = time.monotonic() + READY_TIMEOUT
        while (response := self._soa(name)) is None or response.rcode() != dns.rcode.SERVFAIL:
            if time.monotonic() > deadline:
                raise RuntimeError(f"zone {name} still served after expiring:\n{self.log[-2000:]}")
            time.sleep(0.02)

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
        deadline = time.monotonic() + READY_TIMEOUT
        pending = dict(serials)
        while pending:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"knotd exited:\n{self.log[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"zones {sorted(pending)} not served:\n{self.log[-2000:]}")
            for name, serial in list(pending.items()):
                if self._soa_serial(name) == serial:
                    del pending[name]
            if pending:
                time.sleep(0.02)

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


class Blackhole:
    """A UDP socket on 127.0.0.1 that reads every datagram and never answers: a silent resolver.

    With `reply`, it sends those bytes back to every query instead: a resolver that talks garbage.
    """

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((HOST, 0))
        self._socket.settimeout(0.05)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="dns-blackhole", daemon=True)
        self._thread.start()

    @property
    def listen(self) -> Listen:
        return Listen(HOST, self._socket.getsockname()[1])

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                _, peer = self._socket.recvfrom(65535)
                if self.reply is not None:
                    self._socket.sendto(self.reply, peer)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def knot_factory() -> Iterator[Callable[[Mapping[str, str]], Knot]]:
    """`knot_factory(zones) -> Knot`: a started, independent server; all stop at teardown."""
    started: list[Knot] = []

    def start(zones: Mapping[str, str]) -> Knot:
        server = Knot(zones)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def blackhole() -> Iterator[Listen]:
    """A resolver address (127.0.0.1:port) that receives queries and never answers."""
    hole = Blackhole()
    try:
        yield hole.listen
    finally:
        hole.close()


def knot_fixture(zones: Mapping[str, str], *, scope: Scope = "module") -> Any:
    """A fixture serving `zones` for `scope`, e.g. `dns_server = knot_fixture({...})`."""

    def serve() -> Iterator[Knot]:
        with Knot(zones) as server:
            yield server

    return pytest.fixture(scope=scope)(serve)
