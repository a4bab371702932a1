"""GATE_WORKERS=3: the gateway and two gate workers share the internal port. The gateway follows
the database (SQLite's file, or PostgreSQL's cursor) and its workers follow it over its relay:
one follower per edge, whatever its workers; a worker killed under load is restarted,
and no answer is ever wrong meanwhile; they all stop with the gateway, or on their own when it
dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ADMIN_TOKEN, bearer, both_backends, sample, set_status, sql
from tests.domaingate.cli.test_cli import ROOT, prepare
from tests.support.domaingate import clean_environ
from tests.support.net import HOST, free_port
from tests.support.wait import await_until

# Real gateway and gate-worker processes.
pytestmark = pytest.mark.slow

ASK = "GET /tls-ask?domain={} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n"
LIMIT = 1.0  # the spec's freshness, for every worker


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    api: str
    log: Path
    db: Path | str

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def ready_lines(self) -> int:
        return self.log.read_text(errors="replace").count("gate worker")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """SQLite, unless a test asks for both backends (indirect parametrisation)."""
    return both_backends(request, db_path) if hasattr(request, "param") else db_path


@pytest.fixture
def gateway(tmp_path: Path, db_target: Path | str) -> Iterator[Gateway]:
    db = db_target
    prepare(db, "acme")
    sql(
        db,
        "INSERT INTO apps (name, tenant_id, created_at, updated_at)"
        " SELECT 'web', id, 0, 0 FROM tenants WHERE name = 'acme'",
    )
    port, api, log = free_port(), f"{HOST}:{free_port()}", tmp_path / "gateway.log"
    env = clean_environ()
    env.update(
        DOMAINGATE_DB=str(db),
        DOMAINGATE_INTERNAL_LISTEN=f"{HOST}:{port}",
        DOMAINGATE_API_LISTEN=api,
        DOMAINGATE_ADMIN_TOKEN=ADMIN_TOKEN,
        DOMAINGATE_GATE_WORKERS="3",
        DOMAINGATE_LOG_LEVEL="INFO",
        DOMAINGATE_GATE_SNAPSHOT=str(tmp_path / "gate.snapshot"),
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "domaingate", "serve"], cwd=ROOT, env=env, stderr=out
        )
    gateway = Gateway(process, port, api, log, db)
    try:
        yield gateway
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


async def ask(port: int, name: str) -> int:
    """One ask on a new connection, as Caddy makes them."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(ASK.format(name).encode())
        answer = await reader.read()
    finally:
        writer.close()
    if not answer:
        # Accepted, then closed unanswered: what a worker killed mid-ask leaves its client.
        raise ConnectionResetError(f"connection closed without an answer for {name}")
    return int(answer.split(b" ", 2)[1])


async def all_say(port: int, name: str, expected: int, times: int = 30) -> bool:
    """`times` asks in a row on new connections (spread over the workers) all say `expected`."""
    for _ in range(times):
        try:
            if await ask(port, name) != expected:
                return False
        except OSError:
            return False
    return True


async def started(gateway: Gateway, workers: int) -> None:
    async def up() -> bool:
        return gateway.ready_lines() >= workers and await all_say(gateway.port, "x.test", 403, 1)

    await await_until(up, timeout=30, interval=0.1)


@pytest.fixture
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    await started(gateway, 2)
    assert len(gateway.workers()) == 2
    yield gateway


@pytest.mark.parametrize("db_target", ["sqlite", "postgresql"], indirect=True)
async def test_every_worker_follows_the_database(running: Gateway) -> None:
    db = running.db
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{running.api}/api/v1/domains",
            json={"domain": "shop.acme.com", "app": "web"},
            headers={**bearer(ADMIN_TOKEN), "X-Domaingate-Tenant": "acme"},
        ) as response,
    ):
        assert response.status == 201
    for status, expected in (("verified", 200), ("failed", 403), ("active", 200)):
        set_status(db, "shop.acme.com", status)
        changed = time.monotonic()

        async def seen(expected: int = expected) -> bool:
            return await all_say(running.port, "shop.acme.com", expected)

        await await_until(seen, timeout=LIMIT + 2)
        # 30 asks on new connections reach every one of three workers but with odds of
        # (2/3)^30; the last of them answered within the limit of the change.
        assert time.monotonic() - changed < LIMIT + 1, status


async def test_a_killed_worker_is_restarted_and_no_answer_is_wrong(running: Gateway) -> None:
    """Only connections the killed worker held, or that the kernel had queued on its socket
    before the socket closed, are lost: the socket stays in the port's group while the dying
    process's memory is freed, so a client that retries at once may lose a second one. Once
    the gateway has seen the worker exit (its socket is closed by then), none is lost, and no
    answer is ever wrong."""
    answers: Counter[str] = Counter()
    stop = asyncio.Event()
    reaped = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            after_exit = reaped.is_set()
            try:
                status = await ask(running.port, "x.example.org")
            except OSError:
                answers["connection error after the exit" if after_exit else "lost"] += 1
                continue
            answers["right" if status == 403 else f"wrong {status}"] += 1

    clients = [asyncio.create_task(client()) for _ in range(4)]
    await asyncio.sleep(0.5)
    victim = running.workers()[0]
    os.kill(victim, signal.SIGKILL)
    before = running.ready_lines()

    async def exited() -> bool:
        return "exited with -9; restarting" in running.log.read_text()

    await await_until(exited, timeout=30, interval=0.01)
    reaped.set()

    async def restarted() -> bool:
        workers = running.workers()
        return running.ready_lines() > before and len(workers) == 2 and victim not in workers

    await await_until(restarted, timeout=30, interval=0.1)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*clients)
    assert answers["right"] > 0, answers
    assert set(answers) <= {"right", "lost"}, answers
    assert running.process.poll() is None


async def test_workers_stop_with_the_gateway(running: Gateway) -> None:
    workers = running.workers()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=15) == 0

    async def gone() -> bool:
        return not any(map(alive, workers))

    await await_until(gone, timeout=5)


async def test_workers_stop_when_the_gateway_dies(running: Gateway) -> None:
    workers = running.workers()
    running.process.kill()
    running.process.wait(timeout=5)

    async def gone() -> bool:
        return not any(map(alive, workers))

    await await_until(gone, timeout=5)


def roles(db: Path | str) -> Counter[str]:
    """The database's connections by application_name (each role names its own)."""
    rows = sql(
        db,
        "SELECT application_name, count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid != pg_backend_pid() GROUP BY 1",
    )
    return Counter({str(name): int(n) for name, n in rows})


@pytest.mark.parametrize("db_target", ["postgresql"], indirect=True)
async def test_one_follower_per_edge_whatever_its_workers(running: Gateway) -> None:
    """Three gate processes, one follower: the workers hold no database connection, and their
    /metrics counts come from the gateway."""
    idle = roles(running.db)
    assert idle["domaingate-feed"] == 1
    assert set(idle) <= {"domaingate-gateway", "domaingate-feed", "domaingate-feed-aside"}, idle
    sql(
        running.db,
        "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
        " created_at, updated_at) SELECT 'shop.acme.com', id, 'web', 'active', 'subdomain',"
        " 'cname', 'dg_x', 0, 0 FROM tenants WHERE name = 'acme'",
    )

    async def everywhere() -> bool:
        return await all_say(running.port, "shop.acme.com", 200)

    await await_until(everywhere, timeout=5)
    # Scrapes on new connections reach every process; each answers the gateway's counts.
    for _ in range(12):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{HOST}:{running.port}/metrics") as response,
        ):
            text = await response.text()
        assert sample(text, "domaingate_domains", status="active") == 1
    busy = roles(running.db)
    assert busy["domaingate-feed"] == 1
    assert set(busy) <= {"domaingate-gateway", "domaingate-feed", "domaingate-feed-aside"}, busy
