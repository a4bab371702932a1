"""What fencing costs a write: the reconciler's small write transactions (a job run's upsert)
one after the other, through the plain database and through `FencedDatabase` (the lease row
read, FOR SHARE on PostgreSQL, inside each), on SQLite and on PostgreSQL.

    python -m bench.fencebench sqlite|postgres N

prints one JSON line: writes per second plain and fenced, and their ratio. `fence_section`
runs both for `bench.run --only fence`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import pgdb
from domaingate.store import leases
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.fencing import Fence, FencedDatabase
from domaingate.store.leases import RECONCILER_LEASE
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile

if TYPE_CHECKING:
    from bench.run import Report


async def _writes(db: Database, n: int) -> float:
    """Writes per second of `n` job-run upserts on `db`."""
    started = time.perf_counter()
    for i in range(n):
        async with db.write() as conn:
            await conn.execute(
                "INSERT INTO job_runs (job, last_run_at) VALUES ('dns', ?)"
                " ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at",
                (float(i),),
            )
    return n / (time.perf_counter() - started)


async def measure(target: DatabaseTarget, n: int) -> dict[str, Any]:
    async with await open_database(target) as db:
        held = await leases.take_lease(db, RECONCILER_LEASE, "bench", 3600)
        assert held is not None
        fence = Fence(name=RECONCILER_LEASE, holder="bench", token=held.token)
        fenced = FencedDatabase(db, lambda: fence)
        await _writes(db, n // 10)  # warm the connections and caches
        # Alternating rounds, so a change in the machine's load falls on both alike.
        plain, guarded = [], []
        for _ in range(3):
            plain.append(await _writes(db, n))
            guarded.append(await _writes(fenced, n))
    best_plain, best_fenced = max(plain), max(guarded)
    return {
        "plain_per_s": round(best_plain),
        "fenced_per_s": round(best_fenced),
        "ratio": round(best_fenced / best_plain, 3),
    }


def fence_section(report: Report, quick: bool) -> None:
    n = 500 if quick else 2_000
    lines = [
        f"`python -m bench.fencebench sqlite|postgres {n}`: {n} job-run upserts, one write "
        "transaction each, plain and through `FencedDatabase`, three alternating rounds, best "
        "of each. PostgreSQL: the throwaway cluster (fsync off); SQLite: a file in a temporary "
        "folder (WAL, synchronous FULL).",
        "",
        "| store | plain writes/s | fenced writes/s | fenced / plain |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        sqlite = asyncio.run(measure(SqliteFile(Path(folder) / "fence.db"), n))
    with pgdb.cluster() as cluster:
        postgres = asyncio.run(measure(PostgresServer(cluster.database()), n))
    for name, result in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        lines.append(
            f"| {name} | {result['plain_per_s']} | {result['fenced_per_s']} | {result['ratio']} |"
        )
    report.add("Fencing: the cost of a fenced write", *lines)


def main(argv: list[str]) -> int:
    store, n = argv[0], int(argv[1])
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            result = asyncio.run(measure(SqliteFile(Path(folder) / "fence.db"), n))
    else:
        with pgdb.cluster() as cluster:
            result = asyncio.run(measure(PostgresServer(cluster.database()), n))
    print(json.dumps({"store": store, "n": n, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
