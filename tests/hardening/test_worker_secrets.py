"""A local user reading the gate workers' processes (GATE_WORKERS > 1) learns no secret.

Any user of the machine can read every process's command line (`ps`, /proc/PID/cmdline), so a
worker's settings must never travel there; nor in its environment, which the gateway would
otherwise hand down whole. The real gateway starts its workers on a PostgreSQL URL carrying a
password (SQLite: the admin token alone is secret); neither appears in what /proc shows of a
worker, and the workers still answer the gate.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.backends import open_database
from tests.conftest import target as target_of
from tests.reconciler.conftest import attach
from tests.support.domaingate import ADMIN_TOKEN, Domaingate
from tests.support.wait import wait_until

# Real gateway and gate-worker processes.
pytestmark = pytest.mark.slow

PASSWORD = "w0rker-Secret-7f3a"
LIVE = "live.acme.test"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """The gateway's DB: a SQLite file, or a PostgreSQL URL with a password in it (the test
    cluster trusts its clients, so any password is accepted)."""
    if request.param == "sqlite":
        return db_path
    url: str = request.getfixturevalue("pg_url")
    assert "postgres@" in url, url
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


async def _seed(db: Path | str) -> None:
    async with await open_database(target_of(db)) as database:
        tenant, _ = await tenants.create(database, "acme", time.time)
        await attach(database, tenant, LIVE, time.time, status=Status.VERIFIED, first_check_in=0)


def _workers(gateway_pid: int) -> list[int]:
    children = Path(f"/proc/{gateway_pid}/task/{gateway_pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def test_no_gate_worker_shows_a_secret_in_proc(tmp_path: Path, target: Path | str) -> None:
    asyncio.run(_seed(target))
    daemons = Domaingate(tmp_path, {"DB": str(target), "GATE_WORKERS": "3"})
    secrets = [ADMIN_TOKEN.encode()]
    if isinstance(target, str):
        secrets.append(PASSWORD.encode())
    try:
        daemons.start_gateway()
        gateway = daemons.gateway.pid
        assert gateway is not None

        def ready() -> bool:
            return daemons.gateway.log_text().count("gate worker") >= 2

        wait_until(ready, timeout=30, what="two gate workers", alive=daemons.gateway.check_alive)
        workers = _workers(gateway)
        assert len(workers) == 2, workers
        for pid in workers:
            for view in ("cmdline", "environ"):
                shown = Path(f"/proc/{pid}/{view}").read_bytes()
                for secret in secrets:
                    assert secret not in shown, f"worker {pid}'s {view} shows {secret.decode()}"
        # New connections spread over the three processes: all of them answer.
        assert [daemons.ask(LIVE) for _ in range(30)] == [200] * 30
        assert daemons.ask("other.acme.test") == 403
    finally:
        daemons.stop()
