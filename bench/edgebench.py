"""Benchmark: what reporting every edge's certificates costs the certificate job.

Over a storage of N certificates and a SQLite database of N verified domains named like them
(certbench's), it times the steady certificate job (`Reconciler.scan_certs`: this edge's
unchanged rescan, its report, which writes nothing when nothing changed, the read of every
edge's reports and the plan), once with this edge alone and once with a second edge reporting
the same N names, against the unchanged rescan of the storage alone (`CertScanner.scan`). The
figures are ratios to that rescan, measured in the same process.

    python -m bench.edgebench STORAGE DB N
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import certbench, common
from domaingate.store.backends import open_database
from domaingate.targets import SqliteFile

ROUNDS = 3


async def measure(storage: Path, db_path: Path, n: int) -> dict[str, Any]:
    from domaingate.settings import Settings
    from domaingate.store import edges
    from reconciler.certificates.storage import CertScanner
    from reconciler.daemon import Reconciler

    scanner = CertScanner(storage)
    scanner.scan()
    rescan = min(_timed(scanner.scan) for _ in range(ROUNDS))
    settings = Settings(db=SqliteFile(db_path), caddy_storage=storage, edge_name="bench-a")
    async with await open_database(settings.db) as db:
        reconciler = Reconciler(settings, db)
        await reconciler.renew_leases()
        first = await _timed_async(reconciler.scan_certs)
        await reconciler.scan_certs()  # the moves' replan
        alone = min([await _timed_async(reconciler.scan_certs) for _ in range(ROUNDS)])
        # A second edge's storage holding the same names, reported as its reconciler would.
        found = scanner.scan()
        await edges.report(db, "bench-b", "bench-b", time.time(), changed=found.certs, gone=())
        await edges.edge_seen(db, "bench-b", "bench-b", time.time())
        reconciler.certs.scope.forget()
        await reconciler.scan_certs()
        two = min([await _timed_async(reconciler.scan_certs) for _ in range(ROUNDS)])
        await reconciler.close()
    return {
        "n": n,
        "rescan": rescan,
        "first_job": first,
        "job_one_edge": alone,
        "job_two_edges": two,
        "ratio_one_edge": alone / rescan,
        "ratio_two_edges": two / rescan,
    }


def edges_section(report: Any, quick: bool, py: Any) -> None:
    """The report's section, run in a process of its own over certbench's cached tree."""
    n = 10_000 if quick else 100_000
    storage, _built = certbench.cached(common.WORK, n)
    r = py("bench.edgebench", str(storage), str(common.WORK / "edgejob.db"), str(n))
    report.add(
        "Every edge's certificates: the certificate job's cost",
        f"{n:,} certificates and as many verified domains (`python -m bench.edgebench STORAGE DB "
        "N`). Steady runs of `Reconciler.scan_certs` (rescan, report, read every edge's "
        "reports, plan), best of 3, as a ratio to the unchanged rescan of the storage alone "
        f"({r['rescan']:.2f} s):",
        "",
        "| edges reporting | job s | job / rescan |",
        "|---|---:|---:|",
        f"| 1 | {r['job_one_edge']:.2f} | {r['ratio_one_edge']:.1f} |",
        f"| 2 | {r['job_two_edges']:.2f} | {r['ratio_two_edges']:.1f} |",
        "",
        f"The first job (every domain becomes active, every certificate reported): "
        f"{r['first_job']:.1f} s.",
    )


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


async def _timed_async(call: Any) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


def main() -> None:
    storage, db_path, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    certbench.job_db(db_path, n)
    print(json.dumps(asyncio.run(measure(storage, db_path, n))))


if __name__ == "__main__":
    main()
