"""A fleet on PostgreSQL: freshness at three gateways, directly and through PgBouncer, and the
database connections one edge holds, idle and at its peak.

Freshness: three real gateways (`python -m domaingate serve`, GATE_WORKERS=3 each: one follower
per edge, its two gate workers following it over its relay) follow one database, as three edges
would; a writer process (`bench.freshness write`) commits changes at a steady rate, each a pending
domain set to `verified` in its own transaction, printing CLOCK_MONOTONIC after each commit. For
every change and gateway: commit → that gateway's /tls-ask answering 200, asked on a new
connection each time, as Caddy asks (so the kernel spreads the asks over the gateway and its
workers), every POLL seconds. Then the same with the gateways' DB through PgBouncer in
transaction pooling mode (`tests.support.pgbouncer`), where no notification is delivered and the
gate's poll of its cursor is all there is. Contract: p99 ≤ 1 s.

Connections: one edge (a gateway with GATE_WORKERS=3, and the reconciler) on the database,
`pg_stat_activity` counted by application_name (each role names its connections) every 20 ms:
idle (after start-up), then at peak while 32 API clients list and attach domains, /metrics is
scraped on new connections and the writer commits.

    python -m bench.fleet_freshness [--domains 200000] [--rate 50] [--seconds 10]

Prints a summary, then one JSON line (`bench.run` reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg

from bench import common, freshness, gatebench, gatedb, passbench, pgdb, pgreport
from bench.common import HOST
from tests.support.pgbouncer import PgBouncer

POLL = 0.02  # seconds between two rounds of asks at one gateway
WORKERS = 3  # GATE_WORKERS of every gateway
ADMIN = "bench-admin-token-0123456789abcdef"
SAMPLE = 0.02
ROUND = 16  # asks at once at one gateway


class NewConnectionAsker(freshness.Asker):
    """GET /tls-ask on a new connection each time, as Caddy asks."""

    async def ask(self, name: str) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            writer.write(
                f"GET /tls-ask?domain={name} HTTP/1.1\r\nHost: {HOST}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
        return int(head.split(b" ", 2)[1])


async def measure(
    writer_url: str, ports: list[int], targets: list[tuple[int, str]], rate: float
) -> freshness.Result:
    askers: list[freshness.Asker] = [NewConnectionAsker(port) for port in ports]
    ids = common.WORK / "fleet-ids.txt"
    return await freshness.follow_writes(writer_url, askers, targets, rate, _follow, ids)


async def _follow(
    asker: freshness.Asker, pending: dict[str, float], result: freshness.Result, done: asyncio.Event
) -> None:
    """Each round asks for every pending name at once (at most ROUND at a time): a round asked
    one name after another would take longer with each name pending, and count its own time."""
    turns = asyncio.Semaphore(ROUND)

    async def one(name: str, committed: float) -> None:
        async with turns:
            status = await asker.ask(name)
        result.asks += 1
        now = time.monotonic()
        if status == 200:
            result.delays.append(now - committed)
            pending.pop(name, None)
        elif now - committed > freshness.TIMEOUT:
            result.timeouts += 1
            pending.pop(name, None)

    while not (done.is_set() and not pending):
        await asyncio.gather(*(one(name, at) for name, at in list(pending.items())))
        await asyncio.sleep(POLL)


@contextlib.contextmanager
def gateways(url: str, count: int) -> Iterator[list[gatebench.Server]]:
    servers: list[gatebench.Server] = []
    try:
        for _ in range(count):
            servers.append(
                gatebench.start_gate(url, core=None, DOMAINGATE_GATE_WORKERS=str(WORKERS))
            )
        for server in servers:
            all_listening(server.port)
        yield servers
    finally:
        for server in servers:
            common.stop(server.process)


def listening(port: int) -> int:
    """How many sockets listen on the loopback `port` (one per gate process, SO_REUSEPORT)."""
    wanted = f":{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        rows = [row.split() for row in table][1:]
    return sum(1 for row in rows if row[1].endswith(wanted) and row[3] == "0A")


def all_listening(port: int, timeout: float = 300) -> None:
    """Until every process of the gateway on `port` has loaded and listens: a measurement of
    the steady state, not of the workers' start-up."""
    deadline = time.monotonic() + timeout
    while listening(port) < WORKERS:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate workers on :{port} did not start")
        time.sleep(0.1)


def fresh(url: str, writer_url: str, targets: list[tuple[int, str]], rate: float) -> dict[str, Any]:
    with gateways(url, 3) as servers:
        result = asyncio.run(measure(writer_url, [s.port for s in servers], targets, rate))
        errors = sum(_follower_errors(s.port) for s in servers)
    print(result.summary(), f"(follower errors {errors})", flush=True)
    return {
        "arrivals": len(result.delays),
        "changes": result.changes,
        "timeouts": result.timeouts,
        "asks": result.asks,
        "p50": result.quantile(50),
        "p99": result.quantile(99),
        "max": max(result.delays) if result.delays else 0.0,
        "follower_errors": errors,
    }


def _follower_errors(port: int) -> float:
    """The gateway's (one of its processes') count of failed follower reads, from /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("domaingate_gate_sync_errors_total")
    )


def _roles(admin: psycopg.Connection[Any], database: str) -> Counter[str]:
    rows = admin.execute(
        "SELECT application_name, count(*) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name LIKE 'domaingate%%' GROUP BY 1",
        (database,),
    ).fetchall()
    return Counter({str(name): int(n) for name, n in rows})


async def _api_load(api: int, internal: int, seconds: float) -> int:
    headers = {"Authorization": f"Bearer {ADMIN}", "X-Domaingate-Tenant": "bench"}
    stop = time.monotonic() + seconds
    calls = 0

    async def client(n: int) -> None:
        nonlocal calls
        async with aiohttp.ClientSession(headers=headers) as session:
            k = 0
            while time.monotonic() < stop:
                k += 1
                if k % 4 == 0:
                    body = {"domain": f"peak-{n}-{k}.example.org", "app": "web"}
                    async with session.post(f"http://{HOST}:{api}/api/v1/domains", json=body) as r:
                        await r.read()
                else:
                    async with session.get(f"http://{HOST}:{api}/api/v1/domains?limit=5") as r:
                        await r.read()
                async with (
                    aiohttp.ClientSession() as scraper,
                    scraper.get(f"http://{HOST}:{internal}/metrics") as r,
                ):
                    await r.read()
                calls += 1

    await asyncio.gather(*(client(n) for n in range(32)))
    return calls


def connections(url: str, targets: list[tuple[int, str]], rate: float) -> dict[str, Any]:
    database = url.rsplit("/", 1)[1]
    internal, api = common.free_port(), common.free_port()
    env = gatebench.gate_env(
        url, internal, api, DOMAINGATE_GATE_WORKERS=str(WORKERS), DOMAINGATE_ADMIN_TOKEN=ADMIN,
        DOMAINGATE_PLATFORM_ZONE="apps.bench.example", DOMAINGATE_EDGE_IPV4="192.0.2.1",
        DOMAINGATE_MAX_DOMAINS_PER_TENANT="100000000", DOMAINGATE_ATTACH_RATE_LIMIT="100000000",
    )  # fmt: skip
    env["PYTHONPATH"] = str(common.REPO)
    gate = gatebench.start_python(
        ["-m", "domaingate", "serve"], internal, "fleet-gate.log", env=env, cwd=common.REPO,
        core=None,
    )  # fmt: skip
    reconciler = passbench.start(url, common.free_port())
    try:
        with psycopg.connect(url, autocommit=True, application_name="bench") as admin:
            all_listening(internal)
            deadline = time.monotonic() + 120
            while "domaingate-reconciler" not in _roles(admin, database):
                if time.monotonic() > deadline:
                    raise TimeoutError("the reconciler did not connect")
                time.sleep(0.1)
            time.sleep(3.0)  # start-up over: the reconciler's first jobs have run
            idle = _roles(admin, database)
            peak: Counter[str] = Counter()
            peak_total = 0
            sampling = True

            def sample() -> None:
                nonlocal peak_total
                while sampling:
                    now = _roles(admin, database)
                    peak_total = max(peak_total, sum(now.values()))
                    for role, n in now.items():
                        peak[role] = max(peak[role], n)
                    time.sleep(SAMPLE)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:

                async def load() -> int:
                    calls = asyncio.create_task(_api_load(api, internal, 8.0))
                    await measure(url, [internal], targets, rate)
                    return await calls

                calls = asyncio.run(load())
            finally:
                sampling = False
                sampler.join()
    finally:
        common.stop(gate.process)
        common.stop(reconciler)
    summary = {
        "idle": dict(idle),
        "idle_total": sum(idle.values()),
        "peak": dict(peak),
        "peak_total": peak_total,
        "api_calls": calls,
    }
    print("connections of one edge:", json.dumps(summary), flush=True)
    return summary


def fleet_section(report: pgreport.Report, quick: bool, py: pgreport.Py) -> None:
    """`bench.run`'s section: this module in a process of its own, its JSON line reported."""
    args = ["--domains", "100000" if quick else "1000000", "--seconds", "5" if quick else "10"]
    out = py("bench.fleet_freshness", *args, timeout=1800)
    lines = [
        f"Three real gateways (GATE_WORKERS={WORKERS} each) on {out['domains']:,} domains; a "
        f"writer committing {out['rate']:g} changes/s for {out['seconds']:g} s; every change "
        f"asked at every gateway on a new connection every {POLL * 1000:.0f} ms until it answers "
        "200.",
        "",
        "| DB of the gateways | arrivals | timeouts | p50 ms | p99 ms (≤ 1000) | max ms "
        "| follower errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("direct", "direct"), ("PgBouncer, transaction mode", "pgbouncer")):
        r = out[key]
        ok = r["p99"] <= 1.0 and not r["timeouts"] and not r["follower_errors"]
        lines.append(
            f"| {label} | {r['arrivals']:,} | {r['timeouts']} | {r['p50'] * 1000:.0f} | "
            f"{r['p99'] * 1000:.0f} {report.verdict(ok)} | {r['max'] * 1000:.0f} | "
            f"{r['follower_errors']:g} |"
        )
    c = out["connections"]
    lines += [
        "",
        "Connections of one edge (a gateway with its workers, and the reconciler), by "
        f"application_name: idle {c['idle_total']} {c['idle']}; at peak {c['peak_total']} "
        f"{c['peak']} ({c['api_calls']:,} API calls and /metrics scrapes by 32 clients, with the "
        "writer committing).",
    ]
    report.add("F1. A fleet on PostgreSQL: freshness and connections per edge", *lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    common.WORK.mkdir(parents=True, exist_ok=True)
    n = int(args.rate * args.seconds)
    targets = gatedb.pending_ids(args.domains, 1_000, 3 * n)
    out: dict[str, Any] = {"domains": args.domains, "rate": args.rate, "seconds": args.seconds}
    with pgdb.cluster() as cluster:
        url = cluster.database()
        pgdb.build(url, args.domains, 1_000)
        out["direct"] = fresh(url, url, targets[:n], args.rate)
        bouncer = PgBouncer(cluster, pool_size=20)
        bouncer.start()
        try:
            out["pgbouncer"] = fresh(bouncer.url(url), url, targets[n : 2 * n], args.rate)
            out["pgbouncer_log_errors"] = bouncer.log_text().count("ERROR")
        finally:
            bouncer.stop()
        out["connections"] = connections(url, targets[2 * n :], args.rate)
    out["load"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
