"""PostgreSQL busy (the write lock held elsewhere past the lock timeout, as a locked SQLite file),
and PostgreSQL going away under the running daemons (`domaingate serve` and `domaingate reconcile`,
real processes), and coming back.

The session's cluster is stopped at once (`pg_ctl stop -m immediate`, as a crash or a cut-off
would) while both daemons run on it. Meanwhile API writes answer 503 STORE_UNAVAILABLE with
Retry-After (never 500) and do not happen, the gate keeps answering from memory, the reconciler
keeps running and moves nothing, and each daemon counts the fault (`unreachable`). Once the
server is back, everything resumes by itself: no restart, nothing acknowledged lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.backends import open_database
from domaingate.store.postgres.database import LOCK_TIMEOUT_MS, WRITE_LOCK
from tests.conftest import Api, Client, gate_synced, sample, set_status, target
from tests.hardening.test_faults_database import (
    DB_ERRORS,
    LIVE,
    STORE_ERRORS,
    assert_store_unavailable,
    attach_domain,
    live_untouched,
    metric,
    wait_for_writes,
)
from tests.reconciler.conftest import attach
from tests.support.domaingate import Domaingate
from tests.support.postgres import Cluster
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_target(pg_url: str) -> str:
    return pg_url


async def test_a_write_lock_held_elsewhere_answers_503_and_recovers(
    api: Api, internal: Client
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "live.acme.com")
    set_status(api.db_target, "live.acme.com", "verified")
    await gate_synced(api)
    assert isinstance(api.db_target, str)
    async with await psycopg.AsyncConnection.connect(api.db_target) as other:
        # Another node's writer, stuck in its transaction.
        await other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        started = time.monotonic()
        refused = await api.post_domain(token, "new.acme.com")
        waited = time.monotonic() - started
        assert (refused.status, refused.code) == (503, "STORE_UNAVAILABLE")
        assert refused.headers["Retry-After"] == "1"
        assert waited >= LOCK_TIMEOUT_MS / 1000 - 0.5
        async with internal.get("/tls-ask", params={"domain": "live.acme.com"}) as answer:
            assert answer.status == 200
        async with internal.get("/metrics") as answer:
            exposition = await answer.text()
        assert sample(exposition, STORE_ERRORS, cause="locked") == 1
        await other.rollback()
    # The refused attach did not happen: the name is free.
    assert (await api.post_domain(token, "new.acme.com")).status == 201


async def _set_up(url: str) -> str:
    async with await open_database(target(url)) as database:
        tenant, token = await tenants.create(database, "acme", time.time)
        await attach(database, tenant, LIVE, time.time, status=Status.VERIFIED, first_check_in=0)
    return token


def test_a_server_gone_away_answers_503_loses_nothing_and_resumes(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    token = asyncio.run(_set_up(pg_url))
    dg = Domaingate(
        tmp_path / "dg",
        {
            "DB": pg_url,
            "RESOLVERS": "127.0.0.1:9",
            "DNS_TIMEOUT": "0.2",
            "PLATFORM_ZONE": "apps.example.net",
            "CADDY_STORAGE": str(tmp_path / "caddy"),
            "PENDING_FAST_INTERVAL": "1",
            "PENDING_SLOW_INTERVAL": "1",
            "DRIFT_INTERVAL": "1",
            "LOG_LEVEL": "INFO",
        },
    )
    try:
        dg.start_gateway()
        dg.start_reconciler()
        wait_for_writes(dg, 0)
        assert dg.ask(LIVE) == 200
        pg_cluster.halt()
        try:
            refused = attach_domain(dg, token, "new.acme.test")
            assert_store_unavailable(refused)
            # The gate answers from memory, at once, throughout.
            for _ in range(20):
                asked = time.monotonic()
                assert (dg.ask(LIVE), dg.ask("new.acme.test")) == (200, 403)
                assert time.monotonic() - asked < 1.0
                time.sleep(0.05)
            wait_until(
                lambda: metric(dg, "reconciler", DB_ERRORS, cause="unreachable") >= 1,
                timeout=20,
                what="the reconciler to count the unreachable database",
                alive=dg.reconciler.check_alive,
            )
            assert dg.gateway.running and dg.reconciler.running
        finally:
            pg_cluster.resume()

        resumed = time.time()
        # No restart: the next writes go through. The refused attach did not happen.
        reply = wait_until(
            lambda: r if (r := attach_domain(dg, token, "new.acme.test")).status != 503 else None,
            timeout=20,
            what="the API to write again",
        )
        assert reply.status == 201, reply.body
        wait_for_writes(dg, resumed)
        live_untouched(dg)
        # The gate follows the database again.
        set_status(pg_url, "new.acme.test", "verified")
        wait_until(lambda: dg.ask("new.acme.test") == 200, timeout=10, what="the gate to follow")
        assert metric(dg, "gateway", STORE_ERRORS, cause="unreachable") >= 1
        assert "Traceback" not in dg.gateway.log_text()
    finally:
        dg.stop()
