"""`python -m bench.run --only postgres`: issue 14's benchmarks on PostgreSQL next to SQLite.

One throwaway cluster (`bench.pgdb`, as the tests start one) holds the gate's 1,000,000-domain
database, built by COPY with the rows `bench.gatedb` writes to SQLite. In the same run:
the real gateway's start-up and memory on each backend (alternating), cross-edge freshness at
three real gateways (`bench.freshness`), and the real reconciler daemon's DNS pass over 10,000
due domains on each backend against a bare dnspython client sending the same queries.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench import common, dnsbench, freshness, gatebench, gatedb, passbench, pgdb, profiling
from bench.common import HOST, SERVER_CORE, WORK

COUNT, DUE = 1_000_000, 10_000
Py = Callable[..., dict[str, Any]]


class Report(Protocol):
    def verdict(self, ok: bool) -> str: ...

    def add(self, title: str, *lines: str) -> None: ...


def postgres_section(report: Report, quick: bool, py: Py) -> None:
    sqlite_db, sqlite_built = gatedb.cached(WORK / "gate.db", COUNT, DUE)
    with pgdb.cluster() as cluster:
        url = cluster.database()
        built = pgdb.build(url, COUNT, DUE)
        report.add(
            "Setup: the gate's database on PostgreSQL",
            f"PostgreSQL {cluster.bindir.parent.name} (Debian's package), a throwaway cluster "
            "started as tests/support/postgres.py starts it (`Cluster`: fsync, synchronous_commit "
            "and full_page_writes off), unpinned. Schema from the project's migrations (the "
            f"cluster's template). The same {COUNT:,} rows as the SQLite database (`bench.gatedb`: "
            f"90% allowed, {DUE:,} pending names due in the knot zone), loaded by COPY in one "
            f"transaction with the tables' triggers off, `seq` and `change_xid` set as the "
            f"triggers would, then VACUUM ANALYZE: {built:.1f} s. SQLite: "
            + (f"built in {sqlite_built:.1f} s." if sqlite_built else "the cached build."),
        )
        _startup(report, sqlite_db, url, rounds=1 if quick else 3)
        _startup_profile(report, url)
        _freshness(report, url, seconds=5 if quick else 10)
        _dns_pass(report, cluster.database, py, n=2_000 if quick else 10_000, quick=quick)


def _startup(report: Report, sqlite_db: Path, url: str, rounds: int) -> None:
    verdict = report.verdict
    lines = [
        "`python -m domaingate serve` pinned to core "
        f"{SERVER_CORE}, the backends alternating; gateway CPU = its user + system seconds at "
        "the moment /readyz first answered 200 (the load and the imports; the server's own "
        "work is not in it).",
        "",
        "| backend | start-up s (exec → /readyz 200, < 5) | gateway CPU s | VmRSS MiB (≤ 300) "
        "| VmHWM MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for _ in range(rounds):
        backends: tuple[tuple[str, Path | str], ...] = (("SQLite", sqlite_db), ("PostgreSQL", url))
        for label, db in backends:
            server = gatebench.start_gate(db)
            cpu = common.cpu_seconds(server.process.pid)
            common.stop(server.process)
            lines.append(
                f"| {label} | {server.startup:.2f} {verdict(server.startup < 5)} | {cpu:.2f} | "
                f"{server.rss_mb:.0f} {verdict(server.rss_mb <= 300)} | {server.hwm_mb:.0f} |"
            )
    report.add("P1. Gate start-up and memory with 1,000,000 domains, SQLite and PostgreSQL", *lines)


def _startup_profile(report: Report, url: str) -> None:
    """py-spy over one PostgreSQL start-up, from exec to /readyz 200."""
    if not profiling.available():
        report.add("Profile: gateway start-up on PostgreSQL", "py-spy not installed: no profile.")
        return
    internal, api = common.free_port(), common.free_port()
    env = gatebench.gate_env(url, internal, api)
    env["PYTHONPATH"] = str(common.REPO)
    out = WORK / "pg-startup-profile.txt"
    spy = subprocess.Popen(
        ["py-spy", "record", "--rate", "250", "--format", "raw", "--output", str(out), "--",
         "taskset", "-c", SERVER_CORE, sys.executable, "-m", "domaingate", "serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=common.REPO,
    )  # fmt: skip
    try:
        took = common.wait_status(f"http://{HOST}:{internal}/readyz", 200, timeout=120)
    finally:
        # As Ctrl-C would: py-spy stops the gateway it started and writes its profile.
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    report.add(
        "Profile: gateway start-up on PostgreSQL (py-spy, exec → /readyz 200)",
        f"Ready after {took:.2f} s under the profiler.",
        "",
        profiling.summarise(out, 12),
    )


def _freshness(report: Report, url: str, seconds: int) -> None:
    verdict = report.verdict
    rate, gates = 100.0, 3
    started = time.monotonic()
    result, servers = freshness.run(url, rate, seconds, gates)
    took = time.monotonic() - started
    starts = ", ".join(f"{s.startup:.1f}" for s in servers)
    p99 = result.quantile(99)
    ok = p99 <= 1.0 and not result.timeouts
    report.add(
        "P2. Cross-edge freshness: three gateways on one PostgreSQL",
        f"{gates} real gateways (`python -m domaingate serve`, each its own ports, unpinned, on "
        f"the 1,000,000-domain database; start-up {starts} s) and a writer process committing "
        f"{rate:g} changes/s for {seconds} s, each an UPDATE of one pending domain to `verified` "
        "in its own transaction, printing CLOCK_MONOTONIC after each commit returned. For every "
        "change and gateway: commit returned → that gateway's /tls-ask answering 200, each "
        f"gateway's pending names asked every {freshness.POLL * 1000:.0f} ms over one keep-alive "
        f"connection ({result.asks:,} asks in all; {took:.0f} s with start-ups).",
        "",
        "| changes | gateways | arrivals | timeouts (5 s) | p50 ms | p99 ms (≤ 1000) | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result.changes:,} | {result.gates} | {len(result.delays):,} | {result.timeouts} | "
        f"{result.quantile(50) * 1000:.1f} | {p99 * 1000:.1f} {verdict(ok)} | "
        f"{max(result.delays) * 1000:.1f} |",
    )


def _dns_pass(report: Report, fresh_db: Callable[[], str], py: Py, n: int, quick: bool) -> None:
    verdict = report.verdict
    from tests.support.knot import Knot

    lines = [
        f"knot serving {n:,} CNAMEs as in section 4; the real reconciler daemon (`nice -n "
        f"{passbench.unit_nice()} python -m domaingate reconcile`, unpinned) over {n:,} due "
        "pending domains in a fresh database of each backend, against the same knot; rate = "
        "domains over the span of the `last_checked_at` stamps it wrote. The bare dnspython "
        "client sends the same 7 queries per domain at the same concurrency; each daemon run is "
        "compared with the mean of the bare runs.",
        "",
        "| run | seconds | checks | verified | domains/s |",
        "|---|---:|---:|---:|---:|",
    ]
    bare: list[float] = []
    daemon: list[tuple[str, passbench.Pass]] = []
    with Knot(dnsbench.zones(n)) as knot:
        port = str(knot.port)
        for _ in range(1 if quick else 2):
            r = py("bench.dnsbench", "bare", port, str(n))
            bare.append(r["rate"])
            lines.append(f"| bare dnspython | {r['seconds']:.2f} | {n:,} | - | {r['rate']:,.0f} |")
            sqlite_db = WORK / "schedule.db"
            gatedb.build(sqlite_db, n, n)
            url = fresh_db()
            pgdb.build(url, n, n)
            for label, db in (("daemon, SQLite", sqlite_db), ("daemon, PostgreSQL", url)):
                done = passbench.run_pass(db, knot.port, n)
                daemon.append((label, done))
                lines.append(
                    f"| {label} | {done.seconds:.1f} | {done.checked:,} | {done.verified:,} | "
                    f"{done.rate:,.0f} |"
                )
    mean = sum(bare) / len(bare)
    lines += ["", "| run | ratio vs bare (≥ 0.7) |", "|---|---:|"]
    for label, done in daemon:
        ratio = done.rate / mean
        lines.append(f"| {label} | {ratio:.2f} {verdict(ratio >= 0.7)} |")
    report.add("P3. Reconciler DNS pass on SQLite and PostgreSQL vs bare dnspython", *lines)
