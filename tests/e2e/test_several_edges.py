"""Several edges on one PostgreSQL: two Caddy edges sharing one certificate storage, a gateway on
each, one reconciler, Pebble and knot; on each Caddy of the matrix.

A domain attached through edge A's API gets its certificate through a handshake at edge B; the
certificate is ordered once, never twice (edge A serves the same one from the shared storage);
a removal through edge B is refused at both edges at once.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.flows import platform_records
from tests.support.caddy import Caddy
from tests.support.caddy_binaries import CaddyBinary
from tests.support.domaingate import Domaingate
from tests.support.knot import Knot
from tests.support.net import free_port
from tests.support.pebble import Pebble
from tests.support.postgres import Cluster
from tests.support.stack import DEFAULT_ENV, GATE_LAG
from tests.support.tls import cert_names, handshake
from tests.support.upstreams import Upstreams
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

APPS = ("app1",)
BASE = platform_records(APPS)
NAME = "shop.e2e.test"


@dataclass
class Edges:
    knot: Knot
    pebble: Pebble
    a: Domaingate
    b: Domaingate
    caddy_a: Caddy
    caddy_b: Caddy


@pytest.fixture(scope="module")
def edges(pg_cluster: Cluster, caddy: CaddyBinary) -> Iterator[Edges]:
    workdir = Path(tempfile.mkdtemp(prefix="dg-edges-", dir="/tmp"))
    stops: list[Callable[[], object]] = []
    knot = Knot({"e2e.test": BASE})
    upstreams = Upstreams(workdir / "up", APPS)
    db = pg_cluster.database()
    try:
        knot.start()
        stops.append(knot.stop)
        upstreams.start()
        stops.append(upstreams.stop)
        http_a, https_a, https_b = free_port(), free_port(), free_port()
        # Pebble validates on edge A's ports; edge B's orders are answered there too, from the
        # shared storage, as a cluster behind one address would.
        pebble = Pebble(workdir / "pebble", dns=knot.listen, http_port=http_a, tls_port=https_a)
        stops.append(pebble.stop)
        pebble.start()
        storage = workdir / "caddy-a" / "storage"
        storage.mkdir(parents=True)
        (workdir / "caddy-b").mkdir()
        (workdir / "caddy-b" / "storage").symlink_to(storage)
        settings = {
            **DEFAULT_ENV,
            "DB": db,
            "RESOLVERS": str(knot.listen),
            "PLATFORM_ZONE": "apps.e2e.test",
            "CADDY_STORAGE": str(storage),
            "UPSTREAM_TEMPLATE": upstreams.template,
        }
        a = Domaingate(workdir / "dg-a", settings)
        b = Domaingate(workdir / "dg-b", settings)
        caddies = [
            Caddy(
                workdir / name,
                binary=caddy,
                gate=gateway.internal,
                http_port=http,
                https_port=https,
                acme_directory=pebble.directory_url,
                acme_root=pebble.listener_ca,
            )
            for name, gateway, http, https in (
                ("caddy-a", a, http_a, https_a),
                ("caddy-b", b, free_port(), https_b),
            )
        ]
        a.cli("migrate")
        stops += [a.stop, b.stop]
        a.start_gateway()
        b.start_gateway()
        a.start_reconciler()  # one reconciler for every edge
        for edge in caddies:
            stops.append(edge.stop)
            edge.start()
        yield Edges(knot, pebble, a, b, caddies[0], caddies[1])
    finally:
        for stop in reversed(stops):
            stop()
        pg_cluster.drop(db)
        shutil.rmtree(workdir, ignore_errors=True)


def status(edge: Domaingate, token: str) -> str:
    reply = edge.api("GET", f"/domains/{NAME}", token=token)
    assert reply.status == 200, reply.body
    return str(reply.body["status"])


def test_attach_at_a_certificate_at_b_ordered_once_removal_refused_at_both(edges: Edges) -> None:
    token = edges.a.create_tenant("acme")
    # The platform registers the tenant's app (any edge's CLI: the database is one).
    edges.b.cli("apps", "add", "acme", "app1")
    attached = edges.a.api("POST", "/domains", token=token, body={"domain": NAME, "app": "app1"})
    assert attached.status == 201, attached.body
    # Pending: neither edge lets a handshake through.
    for port in (edges.caddy_a.https_port, edges.caddy_b.https_port):
        with pytest.raises(ssl.SSLError):
            handshake(port, NAME)

    edges.knot.set_zone("e2e.test", BASE + "shop CNAME app1.apps\n")
    wait_until(
        lambda: status(edges.b, token) == "verified",
        timeout=30,
        what=f"{NAME} to be verified",
    )
    wait_until(lambda: edges.b.ask(NAME) == 200, timeout=GATE_LAG, what="edge B's gate")

    orders = edges.pebble.orders()
    certificate = handshake(edges.caddy_b.https_port, NAME)
    assert cert_names(certificate) == [NAME]
    assert edges.pebble.orders() == orders + 1
    # Edge A serves the certificate edge B obtained: the storage is shared, no second order.
    again = handshake(edges.caddy_a.https_port, NAME)
    assert again.serial_number == certificate.serial_number
    time.sleep(0.5)  # let a stray order, if any, reach Pebble's log
    assert edges.pebble.orders() == orders + 1
    wait_until(
        lambda: status(edges.a, token) == "active",
        timeout=30,
        what="the reconciler to see the certificate",
    )

    removed = edges.b.api("DELETE", f"/domains/{NAME}", token=token)
    assert removed.status == 204, removed.body
    assert edges.b.ask(NAME) == 403  # at once at the edge whose API removed it
    # Within the gate's freshness bound at the other edge.
    wait_until(lambda: edges.a.ask(NAME) == 403, timeout=GATE_LAG, what="edge A's gate")
