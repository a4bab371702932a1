"""Tenants' verifies of long names must not take the gateway's file descriptors.

The attack of the security review (issue 11, finding 4): verifies of names with the most labels,
all at once, each asking two resolvers for A, AAAA, NS and CAA at the name and every parent: 38
sockets at once per verify. The resolvers are two knot servers on loopback behind a round trip
of half a second (`Distant`), so that a verify's sockets stay open while the next ones come in,
as with a slow resolver across the internet. Uncapped, the gateway (a real
`python -m domaingate serve` under `prlimit`) ran out of descriptors: verifies failed with
"Too many open files", and its listeners stopped accepting for a second at a time (asyncio's
pause after EMFILE), the gate's included. With the process-wide cap on DNS queries in flight they
queue: every verify succeeds, and the gate answers throughout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from domaingate.dns.inflight import MAX_QUERIES_IN_FLIGHT
from domaingate.hostnames import MAX_LABELS
from domaingate.lifecycle.limits import VERIFY_LIMIT_PER_TENANT
from tests.domaingate.dns.distant import Distant
from tests.hardening.test_abuse import race, request
from tests.support.domaingate import Domaingate
from tests.support.fixtures import knot_factory
from tests.support.knot import Knot
from tests.support.process import Process

__all__ = ["knot_factory"]

pytestmark = pytest.mark.knot

# Each tenant's names CNAME to its own app (apps belong to tenants); the owner's live name to its.
ZONES = {
    "apps.test": "shop A 192.0.2.10\napp0 A 192.0.2.10\napp1 A 192.0.2.10\n",
    "acme.test": (
        "live CNAME shop.apps.test.\n*.t0 CNAME app0.apps.test.\n*.t1 CNAME app1.apps.test.\n"
    ),
}
# The cap, and room for the listeners, the clients below and the database.
NOFILE = MAX_QUERIES_IN_FLIGHT + 96
TENANTS = 2  # each may verify 10 names an hour: 20 verifies, 760 sockets if all at once
RTT = 0.5  # seconds: each query holds its socket this long at least
LIVE = "live.acme.test"
NOBODY = "nobody.acme.test"  # never attached: denied
# The gate answers from memory; a second is what asyncio waits before it accepts again after
# running out of descriptors, far more than an answer takes.
ANSWER_WITHIN = 1.0


def long_name(tenant: int, index: int) -> str:
    name = f"n{index}." + "l." * 12 + f"t{tenant}.acme.test"
    assert len(name.split(".")) == MAX_LABELS
    return name


def test_verifies_of_long_names_at_once_all_succeed_and_the_gate_keeps_answering(
    tmp_path: Path, knot_factory: Callable[[Mapping[str, str]], Knot]
) -> None:
    with contextlib.ExitStack() as stack:
        distant = [stack.enter_context(Distant(knot_factory(ZONES).listen, RTT)) for _ in "ab"]
        flood(tmp_path, ",".join(str(resolver.listen) for resolver in distant))


def flood(tmp_path: Path, resolvers: str) -> None:
    dg = Domaingate(
        tmp_path / "dg", {"PLATFORM_ZONE": "apps.test", "RESOLVERS": resolvers, "LOG_LEVEL": "INFO"}
    )
    limited = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", sys.executable, "-m", "domaingate"]
    dg.gateway = Process(
        "gateway", [*limited, "serve"], env=dg.env, cwd=dg.workdir, log=dg.workdir / "gateway.log"
    )
    try:
        dg.start_gateway()
        owner = dg.create_tenant("owner")
        dg.cli("apps", "add", "owner", "shop")
        assert (
            dg.api("POST", "/domains", token=owner, body={"domain": LIVE, "app": "shop"}).status
            == 201
        )
        assert dg.api("POST", f"/domains/{LIVE}/verify", token=owner).body["verified"] is True
        names: list[tuple[str, str]] = []
        for tenant in range(TENANTS):
            token = dg.create_tenant(f"tenant{tenant}")
            dg.cli("apps", "add", f"tenant{tenant}", f"app{tenant}")
            for index in range(VERIFY_LIMIT_PER_TENANT):
                name = long_name(tenant, index)
                body = {"domain": name, "app": f"app{tenant}"}
                assert dg.api("POST", "/domains", token=token, body=body).status == 201
                names.append((token, name))

        asks: list[tuple[str, int | None, float]] = []
        descriptors: list[int] = []  # the gateway's open descriptors, as sampled
        done = threading.Event()

        def ask_like_caddy() -> None:
            # A new connection for every ask, as Caddy makes nearly every time.
            while not done.is_set():
                for name in (LIVE, NOBODY):
                    started = time.monotonic()
                    status = dg.ask(name)
                    asks.append((name, status, time.monotonic() - started))
                with contextlib.suppress(OSError):
                    descriptors.append(len(os.listdir(f"/proc/{dg.gateway.pid}/fd")))
                time.sleep(0.01)

        prober = threading.Thread(target=ask_like_caddy)
        prober.start()
        try:
            replies = race(
                [request(dg, "POST", f"/domains/{name}/verify", token) for token, name in names]
            )
        finally:
            done.set()
            prober.join()

        failed = [
            (name, reply.status, reply.body)
            for (_, name), reply in zip(names, replies, strict=True)
            if reply.status != 200 or reply.body["verified"] is not True
        ]
        assert failed == [], (max(descriptors, default=0), failed[:3])
        wrong = [(name, status) for name, status, _ in asks if status != (403, 200)[name == LIVE]]
        assert asks and wrong == [], wrong[:5]
        slowest = max(seconds for _, _, seconds in asks)
        assert slowest < ANSWER_WITHIN, f"an ask took {slowest:.2f} s"
        assert "Too many open files" not in dg.gateway.log_text()
    finally:
        dg.stop()
