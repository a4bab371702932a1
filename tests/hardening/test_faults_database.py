"""The database failing under the running daemons (`domaingate serve` and `domaingate reconcile`,
real processes): locked by another writer past the busy timeout, and the disk full.

Locked: a second sqlite3 connection holds `BEGIN EXCLUSIVE` (in WAL mode it stops writers, not
readers) for longer than the daemons' 5 s busy timeout. Full: the database lives on a tmpfs of its
own (mounted here: the tests run as root) whose free space a file then takes up, so SQLite's next
write fails with SQLITE_FULL.

Under both: API writes answer 503 STORE_UNAVAILABLE with Retry-After (never 500) and do not
happen, reads still answer, the gate keeps answering from memory, the reconciler keeps running and
moves nothing, each fault shows in both daemons' logs and metrics, and everything works again once
the lock goes or space is freed, with nothing acknowledged lost.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.backends import open_database
from domaingate.store.sqlite.database import BUSY_TIMEOUT_MS
from tests.conftest import sample, sql, target
from tests.reconciler.conftest import attach
from tests.support.domaingate import ApiResponse, Domaingate
from tests.support.wait import wait_until

# Real daemons, and faults held for seconds.
pytestmark = pytest.mark.slow

LIVE = "live.acme.test"
STORE_ERRORS = "domaingate_store_errors_total"
DB_ERRORS = "domaingate_reconciler_database_errors_total"

Start = Callable[[Path], tuple[Domaingate, str]]


async def _set_up(db: Path) -> str:
    """A tenant (its token) and one verified domain, due for a drift check at once."""
    async with await open_database(target(db)) as database:
        tenant, token = await tenants.create(database, "acme", time.time)
        await attach(database, tenant, LIVE, time.time, status=Status.VERIFIED, first_check_in=0)
    return token


@pytest.fixture
def start_daemons(tmp_path: Path) -> Iterator[Start]:
    """`start_daemons(db) -> (daemons, token)`: both daemons on `db`, stopped at teardown. Every
    domain is checked each second against a resolver that never answers (a transient
    dns_timeout after 0.2 s), so the reconciler writes all the time."""
    started: list[Domaingate] = []

    def start(db: Path) -> tuple[Domaingate, str]:
        token = asyncio.run(_set_up(db))
        dg = Domaingate(
            tmp_path / "dg",
            {
                "DB": str(db),
                "RESOLVERS": "127.0.0.1:9",
                "DNS_TIMEOUT": "0.2",
                "PLATFORM_ZONE": "apps.example.net",
                "CADDY_STORAGE": str(tmp_path / "caddy"),
                "PENDING_FAST_INTERVAL": "1",
                "PENDING_SLOW_INTERVAL": "1",
                "DRIFT_INTERVAL": "1",
                "MAX_DOMAINS_PER_TENANT": "100",
                "LOG_LEVEL": "INFO",
            },
        )
        started.append(dg)
        dg.start_gateway()
        dg.start_reconciler()
        return dg, token

    yield start
    for dg in started:
        dg.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted at teardown (after the daemons using it stopped)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def attach_domain(dg: Domaingate, token: str, name: str) -> ApiResponse:
    return dg.api("POST", "/domains", token=token, body={"domain": name, "app": "shop"})


def assert_store_unavailable(reply: ApiResponse) -> None:
    assert reply.status == 503, (reply.status, reply.body)
    assert reply.body["error"]["code"] == "STORE_UNAVAILABLE"
    assert reply.headers["Retry-After"] == "1"


def last_checked(dg: Domaingate, name: str) -> float:
    """When its last check result was written (0: never)."""
    row = dg.db_row(name)
    assert row is not None
    return float(row["last_checked_at"] or 0)


def live_untouched(dg: Domaingate) -> None:
    """The verified domain is still verified, with no move since it was set up."""
    row = dg.db_row(LIVE)
    assert row is not None and row["status"] == "verified"
    assert dg.event_types(LIVE) == ["domain.created", "domain.verified"]


def wait_for_writes(dg: Domaingate, since: float) -> None:
    """Until the reconciler has written a check result of the verified domain after `since`."""
    wait_until(
        lambda: last_checked(dg, LIVE) > since,
        timeout=15,
        what="the reconciler to write a check result again",
        alive=dg.reconciler.check_alive,
    )


def wait_for_reconciler_error(dg: Domaingate, cause: str) -> None:
    """Until the reconciler's metrics count a failed database write with this cause."""
    wait_until(
        lambda: metric(dg, "reconciler", DB_ERRORS, cause=cause) >= 1,
        timeout=15,
        what=f"the reconciler to count a database error ({cause})",
        alive=dg.reconciler.check_alive,
    )


def assert_logged(log: str, problem: str) -> None:
    """`problem` is in the reconciler's log, and every failure was handled where it happened:
    none surfaced as an asyncio task that died with nobody to hear it."""
    assert problem in log
    assert "Task exception was never retrieved" not in log


def metric(dg: Domaingate, daemon: str, name: str, **labels: str) -> float:
    return sample(dg.metrics(daemon), name, **labels)


def test_a_locked_database_answers_503_and_recovers(start_daemons: Start, tmp_path: Path) -> None:
    dg, token = start_daemons(tmp_path / "domaingate.db")
    wait_for_writes(dg, 0)
    with closing(sqlite3.connect(dg.db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(attach_domain, dg, token, "new.acme.test")
            # The gate answers at once throughout, while the API's write waits for the lock.
            slowest = 0.0
            while not waiting.done():
                asked = time.monotonic()
                assert (dg.ask(LIVE), dg.ask("new.acme.test")) == (200, 403)
                slowest = max(slowest, time.monotonic() - asked)
                time.sleep(0.05)
            refused = waiting.result()
        assert_store_unavailable(refused)
        # It waited for the busy timeout before giving up.
        assert time.monotonic() - locked_at >= BUSY_TIMEOUT_MS / 1000 - 0.5
        assert slowest < 1.0  # milliseconds really; far from the 5 s the write waited
        assert dg.api("GET", f"/domains/{LIVE}", token=token).status == 200
        # The reconciler's writes (check results, the lease) give up the same way.
        wait_for_reconciler_error(dg, "locked")
        other.execute("ROLLBACK")

    released = time.time()
    # The refused attach did not happen: the name is still free.
    assert attach_domain(dg, token, "new.acme.test").status == 201
    wait_for_writes(dg, released)
    live_untouched(dg)
    assert dg.gateway.running and dg.reconciler.running
    assert metric(dg, "gateway", STORE_ERRORS, cause="locked") == 1
    assert metric(dg, "gateway", STORE_ERRORS, cause="full") == 0
    assert metric(dg, "reconciler", "domaingate_reconciler_check_errors_total") >= 1
    assert (
        "database unavailable (locked) while serving POST /api/v1/domains: database is locked"
        in dg.gateway.log_text()
    )
    assert_logged(dg.reconciler.log_text(), "database is locked")


def fill(path: Path) -> None:
    """Write zeros to `path` until the file system has no space left."""
    # Unbuffered: a buffered file would try to flush its rest again at close, outside the try.
    with path.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


@pytest.mark.root
def test_a_full_disk_answers_503_loses_nothing_and_recovers(
    small_disk: Path, start_daemons: Start
) -> None:
    # small_disk first: set up first, torn down last, after the daemons holding it have stopped.
    dg, token = start_daemons(small_disk / "domaingate.db")
    acknowledged = [f"before{i}.acme.test" for i in range(3)]
    for name in acknowledged:
        assert attach_domain(dg, token, name).status == 201
    wait_for_writes(dg, 0)
    filler = small_disk / "filler"
    fill(filler)

    refused: list[str] = []
    for i in range(40):
        name = f"during{i}.acme.test"
        reply = attach_domain(dg, token, name)
        if reply.status == 201:  # SQLite may still have had room for it
            acknowledged.append(name)
            continue
        assert_store_unavailable(reply)
        refused.append(name)
        if len(refused) == 3:
            break
    assert len(refused) == 3
    # The gate answers from memory; readiness holds, since reading the database still works.
    assert (dg.ask(LIVE), dg.ask(refused[0])) == (200, 403)
    assert dg.readyz() == 200
    assert dg.api("GET", f"/domains/{acknowledged[-1]}", token=token).status == 200
    wait_for_reconciler_error(dg, "full")
    live_untouched(dg)

    filler.unlink()
    freed = time.time()
    for name in refused:  # they did not happen: each is free to attach now
        assert attach_domain(dg, token, name).status == 201
    acknowledged += refused
    wait_for_writes(dg, freed)
    live_untouched(dg)
    assert dg.gateway.running and dg.reconciler.running
    assert metric(dg, "gateway", STORE_ERRORS, cause="full") == len(refused)
    assert (
        "database unavailable (full) while serving POST /api/v1/domains: database or disk is full"
        in dg.gateway.log_text()
    )
    assert_logged(dg.reconciler.log_text(), "database or disk is full")

    dg.stop()
    assert sql(dg.db, "PRAGMA integrity_check") == [("ok",)]
    stored = sql(dg.db, "SELECT hostname, status FROM domains WHERE hostname != ?", (LIVE,))
    assert sorted(stored) == sorted((name, "pending") for name in acknowledged)
