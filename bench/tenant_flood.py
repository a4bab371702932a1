"""One tenant's flood of writes through one gateway process, and another tenant's writes beside it.

One `PostgresDatabase` (one gateway process) `--delay` (5 ms) from the database through a delay
proxy on loopback. Tenant `flood` runs `--flood` (16) attach loops at once, all counting its quota
under its own tenant lock, so they queue on it; tenant `quiet` attaches one domain after another.
Measured with the process's per-key turns (`domaingate.store.postgres.turns`: one writer of a key
at a time waits on the server with a pooled connection) and without them (every queued writer
holds a connection and a writer place while it waits, as before the turns): the quiet tenant's
attaches a second and their latency.

    python -m bench.tenant_flood [--url postgresql://…] [--seconds 5] [--delay 0.005]

Without --url it starts a throwaway cluster (`bench.pgdb`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

from bench.fleet_writes import POLICY, ZONES, Report, delay_proxy
from domaingate import hostnames
from domaingate.models import Tenant
from domaingate.store import apps, tenants
from domaingate.store import domains as domain_store
from domaingate.store.errors import StoreBusy
from domaingate.store.postgres.database import PostgresDatabase


class _NoTurns:
    """In place of the process's turns: every writer goes straight to the server's lock."""

    @contextlib.asynccontextmanager
    async def of(self, keys: object) -> AsyncIterator[None]:
        yield


async def _attaching(
    db: PostgresDatabase, tenant: Tenant, app: str, name: str, stop_at: float, took: list[float]
) -> int:
    busy = n = 0
    while time.monotonic() < stop_at:
        n += 1
        host = hostnames.parse(f"d{n}.{name}.{tenant.name}.example.org", ZONES)
        started = time.monotonic()
        try:
            await domain_store.attach(db, tenant, host, app, POLICY, time.time)
            took.append(time.monotonic() - started)
        except StoreBusy:
            busy += 1
    return busy


async def measure(
    url: str, *, turns: bool, flood: int, seconds: float, prefix: str
) -> dict[str, Any]:
    db = await PostgresDatabase.connect(url)
    if not turns:
        db._turns = _NoTurns()  # type: ignore[assignment]
    try:
        loud, _ = await tenants.create(db, f"{prefix}flood", time.time)
        quiet, _ = await tenants.create(db, f"{prefix}quiet", time.time)
        await apps.put(db, loud, f"{prefix}loud", None, time.time)
        await apps.put(db, quiet, f"{prefix}calm", None, time.time)
        loud_took: list[float] = []
        quiet_took: list[float] = []
        started = time.monotonic()
        stop_at = started + seconds
        busy = await asyncio.gather(
            *(
                _attaching(db, loud, f"{prefix}loud", f"w{i}", stop_at, loud_took)
                for i in range(flood)
            ),
            _attaching(db, quiet, f"{prefix}calm", "q", stop_at, quiet_took),
        )
        elapsed = time.monotonic() - started
    finally:
        await db.close()
    quiet_took.sort()
    return {
        "quiet_writes_per_s": len(quiet_took) / elapsed,
        "quiet_median_ms": statistics.median(quiet_took) * 1000 if quiet_took else None,
        "quiet_p95_ms": quiet_took[int(len(quiet_took) * 0.95)] * 1000 if quiet_took else None,
        "flood_writes_per_s": len(loud_took) / elapsed,
        "busy_flood": sum(busy[:-1]),
        "busy_quiet": busy[-1],
    }


async def run(url: str, seconds: float, delay: float, flood: int) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    results: dict[str, Any] = {}
    async with delay_proxy(parts.hostname, parts.port, delay) as port:
        far = parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()
        for turns in (False, True):
            key = "turns" if turns else "no_turns"
            results[key] = await measure(
                far, turns=turns, flood=flood, seconds=seconds, prefix=f"c{len(results)}"
            )
    results["seconds"], results["delay"], results["flood"] = seconds, delay, flood
    return results


def section(report: Report, quick: bool, py: Callable[..., dict[str, Any]]) -> None:
    """`python -m bench.run --only tenant-flood`."""
    seconds = "3" if quick else "5"
    result = py("bench.tenant_flood", "--seconds", seconds)
    lines = [
        f"`python -m bench.tenant_flood --seconds {seconds}`: one gateway process "
        f"{result['delay'] * 1000:.0f} ms from PostgreSQL; tenant `flood` runs {result['flood']} "
        "attach loops at once (all under its own tenant lock), tenant `quiet` one.",
        "",
        "| per-key turns | quiet writes/s | quiet median ms | quiet p95 ms | flood writes/s |",
        "|---|---|---|---|---|",
    ]
    for key in ("no_turns", "turns"):
        row = result[key]
        lines.append(
            f"| {'yes' if key == 'turns' else 'no'} | {row['quiet_writes_per_s']:.1f} | "
            f"{row['quiet_median_ms']:.0f} | {row['quiet_p95_ms']:.0f} | "
            f"{row['flood_writes_per_s']:.1f} |"
        )
    report.add("One tenant's flood of writes through one gateway, and another tenant's", *lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a migrated, empty database (default: a throwaway cluster)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.005, help="the round trip added")
    parser.add_argument("--flood", type=int, default=16)
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(run(args.url, args.seconds, args.delay, args.flood))
    else:
        from bench import pgdb

        with pgdb.cluster() as cluster:
            result = asyncio.run(run(cluster.database(), args.seconds, args.delay, args.flood))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
