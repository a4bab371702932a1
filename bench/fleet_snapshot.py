"""An edge's gate starting from its snapshot (GATE_SNAPSHOT: the database unreachable) against
starting from the database, at a realistic size, as a ratio measured in one run.

Both are the gate's own start (`Follower.open()` into an empty allowlist, in this process): from
the SQLite benchmark database (`bench.gatedb`, 90% of the names allowed), and from the snapshot
that follower then writes, with the gate pointed at a PostgreSQL URL nothing answers (a refused
connection, then the snapshot), which is the path an edge restarted during an outage takes.
Rounds alternate A-B-B-A; the medians are reported. The snapshot's write is timed too (it runs
in a thread of the running gateway, never on its start).

    python -m bench.fleet_snapshot [--count N] [--rounds R]   # prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench import gatedb
from bench.common import WORK
from domaingate.store.backends import feed_for
from domaingate.targets import PostgresServer, SqliteFile, described
from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import Follower
from gateway.gate.snapshot import Origin, Snapshot
from tests.support.net import HOST, free_port

TEMPLATE = "{app}.internal:80"


def upstream(app: str, tenant: str) -> str:
    return f"{app}.internal:80"


async def _from_database(db: Path) -> tuple[float, Allowlist]:
    allowlist = Allowlist()
    follower = Follower(feed_for(SqliteFile(db)), allowlist, upstream)
    started = time.perf_counter()
    await follower.open()
    took = time.perf_counter() - started
    await follower.feed.close()
    return took, allowlist


async def _from_snapshot(url: str, snapshot: Snapshot) -> tuple[float, int]:
    allowlist = Allowlist()
    follower = Follower(feed_for(PostgresServer(url)), allowlist, upstream, snapshot=snapshot)
    started = time.perf_counter()
    await follower.open()
    took = time.perf_counter() - started
    assert allowlist.source == "snapshot", "the snapshot was not used"
    await follower.feed.close()
    return took, len(allowlist)


def measure(count: int, rounds: int) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    db, _ = gatedb.cached(WORK / "fleet-snapshot.db", count, 0)
    return asyncio.run(_measure(db, rounds))


async def _measure(db: Path, rounds: int) -> dict[str, Any]:
    url = f"postgresql://dg@{HOST}:{free_port()}/dg"
    snapshot = Snapshot(WORK / "fleet.snapshot", described(PostgresServer(url)), TEMPLATE)
    _, loaded = await _from_database(db)
    origin = Origin(database=snapshot.database, identity="", seq=0, synced_at=time.time())
    started = time.perf_counter()
    snapshot.write(loaded.entries(), origin)
    write = time.perf_counter() - started
    database: list[float] = []
    restored: list[float] = []
    names = 0
    for i in range(rounds):
        order = ("db", "snap") if i % 2 == 0 else ("snap", "db")
        for which in order:
            if which == "db":
                database.append((await _from_database(db))[0])
            else:
                took, names = await _from_snapshot(url, snapshot)
                restored.append(took)
    assert names == len(loaded)
    from_db, from_snap = statistics.median(database), statistics.median(restored)
    return {
        "names": names,
        "database_s": round(from_db, 3),
        "snapshot_s": round(from_snap, 3),
        "ratio_snapshot_to_database": round(from_snap / from_db, 3),
        "snapshot_write_s": round(write, 3),
        "snapshot_mb": round(snapshot.path.stat().st_size / 2**20, 1),
    }


def section(report: Any, quick: bool) -> None:
    """The bench.run report's section."""
    count = 200_000 if quick else 1_000_000
    found = measure(count, 3 if quick else 5)
    report.add(
        "Gate start-up from its snapshot vs from the database (bench/fleet_snapshot.py)",
        f"{found['names']:,} allowed names (SQLite benchmark database of {count:,}); medians of "
        "A-B-B-A rounds, in one process.",
        "",
        "| start | seconds | ratio to the database |",
        "|---|---|---|",
        f"| from the database (SQLite) | {found['database_s']} | 1.00 |",
        f"| from the snapshot (PostgreSQL unreachable) | {found['snapshot_s']} | "
        f"{found['ratio_snapshot_to_database']:.2f} |",
        "",
        f"Writing the snapshot took {found['snapshot_write_s']} s ({found['snapshot_mb']} MiB), "
        "in a thread of the running gateway.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.count, args.rounds)))


if __name__ == "__main__":
    main()
