"""Benchmarks 1-3: gate throughput vs a bare aiohttp set lookup, memory and start-up, freshness."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import common, profiling
from bench.common import HOST, SERVER_CORE, WORK, WrkResult


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    startup: float
    rss_mb: float = 0.0
    hwm_mb: float = 0.0


def gate_env(db: Path | str, internal: int, api: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DOMAINGATE_DB=str(db),
        DOMAINGATE_INTERNAL_LISTEN=f"{HOST}:{internal}",
        DOMAINGATE_API_LISTEN=f"{HOST}:{api}",
        DOMAINGATE_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def start_gate(
    db: Path | str, repo: Path = common.REPO, core: str | None = SERVER_CORE, **extra: str
) -> Server:
    """`python -m domaingate serve` pinned to `core` (None: unpinned); start-up = exec → /readyz
    200. `db`: a SQLite file or a PostgreSQL URL."""
    internal, api = common.free_port(), common.free_port()
    env = gate_env(db, internal, api, **extra)
    env["PYTHONPATH"] = str(repo)
    return start_python(
        ["-m", "domaingate", "serve"], internal, "gate.log", env=env, cwd=repo, core=core
    )


def start_baseline(db: Path) -> Server:
    port = common.free_port()
    command = ["-m", "bench.baseline_server", str(db), str(port)]
    return start_python(command, port, "baseline.log", env=None, cwd=common.REPO)


def start_python(
    args: list[str],
    port: int,
    log_name: str,
    *,
    env: dict[str, str] | None,
    cwd: Path,
    core: str | None = SERVER_CORE,
    ready: Callable[[subprocess.Popen[bytes]], object] | None = None,
) -> Server:
    """`python ARGS` pinned to `core`, ready once /readyz on `port` answers 200 and `ready` (if
    given) returns; start-up is exec → both."""
    started = time.monotonic()
    with (WORK / log_name).open("ab") as log:
        process = subprocess.Popen(
            [*(["taskset", "-c", core] if core is not None else []), sys.executable, *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )  # fmt: skip
    try:
        common.wait_status(f"http://{HOST}:{port}/readyz", 200, timeout=120)
        if ready is not None:
            ready(process)
    except BaseException:
        common.stop(process)
        raise
    server = Server(process, port, time.monotonic() - started)
    server.rss_mb, server.hwm_mb = common.rss_mb(process.pid)
    return server


@dataclass
class Throughput:
    runs: list[tuple[WrkResult, WrkResult]] = field(default_factory=list)  # (gate, baseline)

    def ratios(self) -> list[tuple[float, float]]:
        return [(g.rps / b.rps, g.p99_ms / b.p99_ms) for g, b in self.runs]


def throughput(
    gate: Server, baseline: Server, paths: Path, *, rounds: int, seconds: int
) -> Throughput:
    # Warm both (first requests of a process are slower), then alternate.
    common.wrk("warm-up", gate.port, paths, seconds=2)
    common.wrk("warm-up", baseline.port, paths, seconds=2)
    result = Throughput()
    for n in range(1, rounds + 1):
        g = common.wrk(f"gate #{n}", gate.port, paths, seconds=seconds)
        b = common.wrk(f"baseline #{n}", baseline.port, paths, seconds=seconds)
        result.runs.append((g, b))
    return result


@dataclass
class Freshness:
    delays: list[float]
    timeouts: int
    load_rps: float

    @property
    def p50(self) -> float:
        return statistics.median(self.delays) if self.delays else float("nan")

    @property
    def max(self) -> float:
        return max(self.delays) if self.delays else float("nan")


def freshness(gate: Server, db: Path, targets: list[tuple[int, str]], paths: Path) -> Freshness:
    """Verify `targets` one at a time from another connection while wrk loads the gate."""
    seconds = 10 + len(targets) // 2
    load = subprocess.Popen(
        ["taskset", "-c", common.LOAD_CORE, "wrk", "-t1", "-c50", f"-d{seconds}s",
         "-s", str(WORK / "paths.lua"), f"http://{HOST}:{gate.port}", "--", str(paths)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    delays: list[float] = []
    timeouts = 0
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        time.sleep(1.0)
        for domain_id, name in targets:
            url = f"http://{HOST}:{gate.port}/tls-ask?domain={name}"
            if common.http_get(url) != 403:
                raise RuntimeError(f"{name} is allowed before its change")
            conn.execute("UPDATE domains SET status = 'verified' WHERE id = ?", (domain_id,))
            changed = time.monotonic()
            while time.monotonic() - changed < 5.0:
                if common.http_get(url) == 200:
                    delays.append(time.monotonic() - changed)
                    break
                time.sleep(0.01)
            else:
                timeouts += 1
    finally:
        conn.close()
        out, _ = load.communicate(timeout=seconds + 30)
    text = out.decode(errors="replace")
    rps = 0.0
    for line in text.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
    return Freshness(delays, timeouts, rps)


def profile_gate(gate: Server, paths: Path, out: Path, seconds: int = 8) -> str:
    """py-spy over the gate under wrk load; returns the top of the profile as markdown."""
    spy = profiling.record(gate.process.pid, out, seconds)
    common.wrk("profiled", gate.port, paths, seconds=seconds)
    return profiling.finish(spy, out)
