"""Writes across a fleet on PostgreSQL: the fleet lock against scoped locks, with a far edge.

Four writers, each a `PostgresDatabase` of its own (its own pool, as four edges have), each for a
tenant of its own, run the store's real writes in a loop: an attach (`domains.attach`) and the
verify-style move of the domain attached (`checks.apply_checks` with a passing check, the
reconciler's and verify-now's write). Measured alone, then with a fifth writer doing the same
through a delay proxy on loopback that adds `--delay` (40 ms) to every round trip, as an edge in
another region would: its transactions hold their locks for all their round trips. Each of the
four combinations on a fresh database, first with every write taking the fleet lock exclusively
(`PostgresDatabase(scoped=False)`, how every write was made before scopes), then scoped.

    python -m bench.fleet_writes [--url postgresql://…] [--seconds 5] [--delay 0.04]

Without --url it starts a throwaway cluster (`bench.pgdb`). Prints one JSON line: per
combination the nearby writers' committed writes a second, the far writer's, and how many
writes gave up waiting (StoreBusy, a 503 at the API).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from domaingate import hostnames
from domaingate.dns.findings import CheckReport, Finding
from domaingate.lifecycle.dns import CheckOutcome, Policy, plan_check
from domaingate.models import Tenant
from domaingate.store import apps, tenants
from domaingate.store import domains as domain_store
from domaingate.store.checks import apply_checks
from domaingate.store.errors import StoreBusy
from domaingate.store.postgres.database import PostgresDatabase

NEARBY = 4
ZONES = ("apps.example.net",)
POLICY = domain_store.AttachPolicy(
    require_txt=False, quota=10**9, first_check_in=60, hourly_attaches=10**9
)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward what `reader` reads to `writer`, each chunk `delay` seconds later, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def send() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    finally:
        queue.put_nowait(None)
        with contextlib.suppress(ConnectionError):
            await sender


@contextlib.asynccontextmanager
async def delay_proxy(host: str, port: int, rtt: float) -> AsyncIterator[int]:
    """A TCP proxy on loopback to host:port adding `rtt` to every round trip; yields its port."""

    handlers: set[asyncio.Future[Any]] = set()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        both = asyncio.gather(
            _pump(client_r, server_w, rtt / 2), _pump(server_r, client_w, rtt / 2)
        )
        handlers.add(both)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await both

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        # The writers have closed their connections: end what is left of each pump here.
        for both in handlers:
            both.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


REPORT = CheckReport(
    hostname="",
    findings=(Finding(check="cname", ok=True, code=None, message="points at the app"),),
    provider=None,
)


async def _writer(
    db: PostgresDatabase, tenant: Tenant, app: str, stop_at: float, counts: dict[str, int]
) -> None:
    """Attach and verify domain after domain until `stop_at`, counting committed writes."""
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        host = hostnames.parse(f"d{n}.{tenant.name}.example.org", ZONES)
        try:
            domain = await domain_store.attach(db, tenant, host, app, POLICY, time.time)
            counts["writes"] += 1
            now = time.time()
            plan = plan_check(domain, REPORT, now, Policy())
            await apply_checks(db, [CheckOutcome(domain=domain, plan=plan, now=now)])
            counts["writes"] += 1
        except StoreBusy:
            counts["busy"] += 1


async def measure(
    url: str, *, scoped: bool, far_url: str | None, seconds: float, prefix: str
) -> dict[str, Any]:
    nearby = [await PostgresDatabase.connect(url, scoped=scoped) for _ in range(NEARBY)]
    far = await PostgresDatabase.connect(far_url, scoped=scoped) if far_url else None
    try:
        writers = []
        for i, db in enumerate([*nearby, *([far] if far else [])]):
            tenant, _ = await tenants.create(db, f"{prefix}t{i}", time.time)
            await apps.put(db, tenant, f"{prefix}app{i}", None, time.time)
            writers.append((db, tenant, f"{prefix}app{i}"))
        counts = [{"writes": 0, "busy": 0} for _ in writers]
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(
            *(
                _writer(db, t, app, stop_at, c)
                for (db, t, app), c in zip(writers, counts, strict=True)
            )
        )
        took = time.monotonic() - started
    finally:
        for db in [*nearby, *([far] if far else [])]:
            await db.close()
    near = counts[:NEARBY]
    return {
        "nearby_writes_per_s": sum(c["writes"] for c in near) / took,
        "nearby_busy": sum(c["busy"] for c in near),
        "far_writes_per_s": counts[NEARBY]["writes"] / took if far else None,
        "far_busy": counts[NEARBY]["busy"] if far else None,
    }


async def run(database: Any, seconds: float, delay: float) -> dict[str, Any]:
    """Every combination, each on a fresh database from `database()`."""
    results: dict[str, Any] = {}
    for scoped in (False, True):
        for with_far in (False, True):
            url = database()
            far_url = None
            async with contextlib.AsyncExitStack() as stack:
                if with_far:
                    parts = urllib.parse.urlsplit(url)
                    assert parts.hostname is not None and parts.port is not None
                    proxy = await stack.enter_async_context(
                        delay_proxy(parts.hostname, parts.port, delay)
                    )
                    far_url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy}").geturl()
                key = f"{'scoped' if scoped else 'fleet'}_{'far' if with_far else 'alone'}"
                results[key] = await measure(
                    url, scoped=scoped, far_url=far_url, seconds=seconds, prefix=f"c{len(results)}"
                )
    fleet, scoped_ = results["fleet_far"], results["scoped_far"]
    results["ratio_far_scoped_to_fleet"] = (
        scoped_["nearby_writes_per_s"] / fleet["nearby_writes_per_s"]
        if fleet["nearby_writes_per_s"]
        else None
    )
    results["seconds"], results["delay"] = seconds, delay
    return results


class Report(Protocol):
    def add(self, title: str, *lines: str) -> None: ...


def fleet_writes_section(report: Report, quick: bool, py: Callable[..., dict[str, Any]]) -> None:
    """`python -m bench.run --only fleet-writes`: the table of the four combinations."""
    seconds = "3" if quick else "5"
    result = py("bench.fleet_writes", "--seconds", seconds)
    lines = [
        f"`python -m bench.fleet_writes --seconds {seconds}`: {NEARBY} writers nearby (each its "
        "own pool and tenant) attaching and verifying domains, alone and with a fifth writer "
        f"{result['delay'] * 1000:.0f} ms away (a delay proxy on loopback); committed writes a "
        "second, and writes that gave up waiting (StoreBusy).",
        "",
        "| locks | far writer | nearby writes/s | far writes/s | busy (nearby / far) |",
        "|---|---|---|---|---|",
    ]
    for key, row in result.items():
        if not isinstance(row, dict):
            continue
        locks, far = key.split("_")
        far_rate = "" if row["far_writes_per_s"] is None else f"{row['far_writes_per_s']:.1f}"
        lines.append(
            f"| {locks} | {'yes' if far == 'far' else 'no'} | {row['nearby_writes_per_s']:.0f} | "
            f"{far_rate} | {row['nearby_busy']} / {row['far_busy'] or 0} |"
        )
    ratio = result["ratio_far_scoped_to_fleet"]
    lines += ["", f"With the far writer, scoped / fleet lock: {ratio:.1f} x the nearby writes."]
    report.add("Fleet writes on PostgreSQL: scoped locks against the fleet lock", *lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a migrated, empty database (default: a throwaway cluster)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.04, help="the far writer's round trip")
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(run(lambda: args.url, args.seconds, args.delay))
    else:
        from bench import pgdb

        with pgdb.cluster() as cluster:
            result = asyncio.run(run(cluster.database, args.seconds, args.delay))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
