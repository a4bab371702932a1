"""Cross-edge freshness on PostgreSQL: how long a committed change takes to hold at every gate.

Three gates follow one database, as three edges would (each its own `PostgresAllowlistSync`, with
its own LISTEN connection: the part of a gateway that follows the database), while a writer on
another connection commits changes at a steady rate, each in its own transaction. For every
change and every gate, the time from the writer's commit returning to the gate taking the row in.
Target: p99 ≤ 1 s at 100 changes/s over three gates.

    python -m bench.freshness [--url postgresql://…] [--rate 100] [--seconds 10] [--gates 3]

Without --url it starts a throwaway cluster of Debian's PostgreSQL (as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator

import psycopg

from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import PostgresAllowlistSync


class TimedAllowlist(Allowlist):
    """An allowlist that notes when each hostname first arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def apply(
        self, domain_id: int, hostname: str, app: str, status: str, upstream: str | None
    ) -> None:
        super().apply(domain_id, hostname, app, status, upstream)
        if hostname in self:
            self.arrived.setdefault(hostname, time.monotonic())


def upstream(app: str, tenant: str) -> str:
    return f"{app}.{tenant}.svc:80"


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.support.postgres import Cluster, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        raise SystemExit("no PostgreSQL server installed; give --url")
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster.database()
    finally:
        cluster.stop()


async def measure(url: str, rate: float, seconds: float, gates: int) -> list[float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as writer:
        await writer.execute(
            "INSERT INTO tenants (name, token_hash, created_at) VALUES ('bench', 'x', 0)"
            " ON CONFLICT DO NOTHING"
        )
        # The bench tenant's app: a domain is allowed only on an app of its own tenant.
        await writer.execute(
            "INSERT INTO apps (name, tenant_id, created_at, updated_at)"
            " SELECT 'shop', id, 0, 0 FROM tenants WHERE name = 'bench' ON CONFLICT DO NOTHING"
        )
        lists = [TimedAllowlist() for _ in range(gates)]
        syncs = [PostgresAllowlistSync(url, allowlist, upstream) for allowlist in lists]
        for sync in syncs:
            await sync.open()
        tasks = [asyncio.create_task(sync.run()) for sync in syncs]
        committed: dict[str, float] = {}
        started = time.monotonic()
        run = f"{int(time.time())}"
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            name = f"f{n}-{run}.bench.example"
            await writer.execute(
                "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
                " created_at, updated_at) SELECT %s, id, 'shop', 'active', 'subdomain', 'cname',"
                " 'dg_x', 0, 0 FROM tenants WHERE name = 'bench'",
                (name,),
            )
            committed[name] = time.monotonic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            committed.keys() <= allowlist.arrived.keys() for allowlist in lists
        ):
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sync in syncs:
            await sync.close()
    missing = sum(len(committed.keys() - allowlist.arrived.keys()) for allowlist in lists)
    if missing:
        raise SystemExit(f"{missing} changes never reached a gate")
    return [
        max(0.0, allowlist.arrived[name] - at)
        for allowlist in lists
        for name, at in committed.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--gates", type=int, default=3)
    args = parser.parse_args()
    with database(args.url) as url:
        delays = asyncio.run(measure(url, args.rate, args.seconds, args.gates))
    cuts = statistics.quantiles(delays, n=100)
    print(
        f"{len(delays)} arrivals ({args.gates} gates, {args.rate:g} changes/s): "
        f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
