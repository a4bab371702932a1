"""Resolver faults with the reconciler and the gate running: a resolver that times out, one that
answers SERVFAIL, one that answers garbage.

Each fault is real traffic on loopback: a UDP socket that reads queries and never answers, or
answers every one with the same junk bytes (`support.blackhole.Blackhole`), and knot serving the
tenant's zone until it expires, after which knot answers SERVFAIL for it as for any zone it holds
but cannot serve. The reconciler is `reconciler.daemon.run()` with its metrics listener on a free
port; the gate and the API are the gateway's apps on the same database.

Under every fault: the daemon keeps running, the gate keeps answering from what it knows, no
domain moves (a verified one stays verified, whoever checks it: the schedule or a tenant's
"verify now"), and the fault shows in the log and in the reconciler's metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from domaingate.settings import Listen
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import events, tenants
from tests.conftest import ApiFactory, Client, gate_client, gate_synced, make_settings, sample
from tests.reconciler.conftest import attach, running
from tests.support.blackhole import Blackhole
from tests.support.knot import Knot
from tests.support.net import HOST, free_port
from tests.support.wait import await_until

pytestmark = pytest.mark.knot

# fault → the result code it must give, and what its message says
FAULTS = {
    "timeout": ("dns_timeout", "did not answer"),
    "servfail": ("dns_error", "answered SERVFAIL"),
    "garbage": ("dns_error", "sent a malformed answer"),
}
ZONE = "acme.test"
LIVE = "live.acme.test"
NEW = "new.acme.test"
CHECKS = "domaingate_reconciler_dns_checks_total"


@contextmanager
def broken_resolver(
    fault: str, start_knot: Callable[[Mapping[str, str]], Knot]
) -> Iterator[Listen]:
    if fault == "servfail":
        # The records are right; the server cannot serve them any more.
        target = "shop.apps.example.net."
        server = start_knot({ZONE: f"live CNAME {target}\nnew CNAME {target}\n"})
        server.expire_zone(ZONE)
        yield server.listen
        return
    hole = Blackhole(reply=b"\x00garbage" if fault == "garbage" else None)
    try:
        yield hole.listen
    finally:
        hole.close()


async def scrape(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        return await response.text()


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_resolver_fault_moves_nothing_and_shows_in_logs_and_metrics(
    fault: str,
    knot_factory: Callable[[Mapping[str, str]], Knot],
    api_factory: ApiFactory,
    aiohttp_client: AiohttpClient,
    db_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, words = FAULTS[fault]
    with broken_resolver(fault, knot_factory) as resolver:
        api = await api_factory(resolvers=(resolver,), dns_timeout=0.5)
        gate: Client = await gate_client(aiohttp_client, api.app)
        tenant, token = await tenants.create(api.db, "acme", api.clock)
        # Both due at once: a live domain the fault must not demote, a pending one it must not
        # verify or fail.
        live = await attach(
            api.db, tenant, LIVE, time.time, status=Status.VERIFIED, first_check_in=0
        )
        new = await attach(api.db, tenant, NEW, time.time, first_check_in=0)
        await gate_synced(api)
        settings = make_settings(
            db_path,
            resolvers=(resolver,),
            dns_timeout=0.5,
            pending_fast_interval=0.2,
            drift_interval=0.2,
            caddy_storage=tmp_path / "caddy",
            reconciler_listen=Listen(HOST, free_port()),
        )
        with caplog.at_level(logging.WARNING, logger="reconciler"):
            async with running(settings) as base, aiohttp.ClientSession() as session:

                async def checked_repeatedly() -> bool:
                    return sample(await scrape(session, base), CHECKS, outcome=code) >= 4

                await await_until(checked_repeatedly, timeout=15, interval=0.1)
                # Answered from memory meanwhile, as before the fault.
                for name, answer in ((LIVE, 200), (NEW, 403)):
                    async with gate.get("/tls-ask", params={"domain": name}) as reply:
                        assert reply.status == answer, name
                # A tenant asking to verify now meets the same fault, and the domain stays
                # verified (`verified` says the gate allows it, whatever this check saw).
                asked = await api.call("POST", f"/api/v1/domains/{LIVE}/verify", token=token)
                assert asked.status == 200, asked
                assert (asked.body["verified"], asked.body["status"]) == (True, "verified")
                assert asked.body["last_check_error"]["code"] == code

                text = await scrape(session, base)
                async with session.get(f"{base}/healthz") as health:
                    assert (await health.json())["status"] == "ok"
        runs = "domaingate_reconciler_job_runs_total"
        assert sample(text, runs, job="dns", result="ok") >= 2
        assert sample(text, runs, job="dns", result="failed") == 0
        # A fault is a check outcome, never a check that could not run or write.
        assert sample(text, "domaingate_reconciler_check_errors_total") == 0
        assert sample(text, CHECKS, outcome="ok") == 0

    # Nothing moved: the events are still those of the set-up.
    for domain, status, moves in (
        (live, Status.VERIFIED, ["domain.created", "domain.verified"]),
        (new, Status.PENDING, ["domain.created"]),
    ):
        row = await domain_store.get_by_id(api.db, domain.id)
        assert (row.status, row.last_check_code) == (status, code), domain.hostname
        assert [e.type for e in await events.for_domain(api.db, domain.id)] == moves
    reported = [r.getMessage() for r in caplog.records if r.name == "reconciler.metrics"]
    # Reported once (the next report waits a minute), naming the code, a domain and the resolver.
    assert len(reported) == 1, reported
    assert "the resolvers are failing (" in reported[0] and code in reported[0]
    assert f"The resolver {resolver} {words}" in reported[0]
