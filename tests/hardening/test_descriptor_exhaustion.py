"""Connections that never finish a request must not take the descriptors the gate needs.

The attack: whoever reaches the API port opens connections and sends nothing, or a request head
a byte at a time; a local process does the same to the internal listener. Each connection is a
descriptor of the gateway's process, the gate's own listener included. Unbounded, they reached
`RLIMIT_NOFILE`, and the internal listener could accept nothing more: Caddy's asks went
unanswered, so handshakes of new and renewing names failed and `forward_auth` answered 502.

Here the gateway is the real `python -m domaingate serve` under `prlimit`, with its connection
caps sized from that limit (nothing configured), facing many times more idle and trickling
connections than it has descriptors. The gate must keep answering: 200 for a verified name, 403
for any other, and the caps must have shed connections (counted by listener).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from domaingate.settings import Listen
from tests.conftest import set_status
from tests.support.domaingate import Domaingate
from tests.support.process import Process
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

NOFILE = 256
IDLE_API = 400
TRICKLING_API = 100
IDLE_INTERNAL = 300
LIVE = "shop.acme.test"
NOBODY = "nobody.acme.test"


@contextlib.contextmanager
def connections(listen: Listen, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections to `listen`, opened without waiting: past the listener's backlog the
    kernel completes them as the server accepts, or never."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            opened.append(sock)
            result = sock.connect_ex((listen.host, listen.port))
            assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result, result)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def trickle(sockets: list[socket.socket], data: bytes) -> None:
    """The start of a request head on each connection that is open yet."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.send(data)


def gate_answers(dg: Domaingate) -> bool:
    return dg.ask(LIVE) == 200 and dg.ask(NOBODY) == 403


def test_idle_and_trickling_connections_do_not_starve_the_gate(tmp_path: Path) -> None:
    dg = Domaingate(tmp_path / "dg", {"PLATFORM_ZONE": "apps.test", "RESOLVERS": "127.0.0.1:9"})
    limited = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", sys.executable, "-m", "domaingate"]
    dg.gateway = Process(
        "gateway", [*limited, "serve"], env=dg.env, cwd=dg.workdir, log=dg.workdir / "gateway.log"
    )
    try:
        dg.start_gateway()
        owner = dg.create_tenant("acme")
        dg.cli("apps", "add", "acme", "shop")
        assert dg.api("POST", "/domains", token=owner, body={"domain": LIVE, "app": "shop"}).status
        set_status(dg.db, LIVE, "verified")
        wait_until(lambda: gate_answers(dg), timeout=10, what="the gate to allow the name")

        with (
            connections(dg.api_listen, IDLE_API),
            connections(dg.api_listen, TRICKLING_API) as trickling,
            connections(dg.internal, IDLE_INTERNAL),
        ):
            trickle(trickling, b"GET /api/v1/domains HTTP/1.1\r\nHo")
            wait_until(
                lambda: gate_answers(dg),
                timeout=10,
                what="the gate to answer beside the idle connections",
                alive=dg.gateway.check_alive,
            )
            trickle(trickling, b"s")
            assert gate_answers(dg)
            shed = {
                listener: sum(
                    dg.sample(
                        "gateway", f"domaingate_connections_{action}_total", listener=listener
                    )
                    for action in ("refused", "evicted")
                )
                for listener in ("api", "internal")
            }
            assert shed["api"] > 0 and shed["internal"] > 0, shed
        assert "Too many open files" not in dg.gateway.log_text()
    finally:
        dg.stop()
