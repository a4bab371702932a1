"""`python -m bench.run --only caddy-flood`: the Caddy flood rounds, the GATE_WORKERS runs, and
their report sections (bench/caddyflood.py does the measuring)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

from bench import caddyflood, common, gatedb, profiling
from bench.caddyflood import Caddy, Round
from bench.common import HOST, LOAD_CORE, SERVER_CORE, WORK

COUNT, DUE = 1_000_000, 10_000
HEADER = [
    "| round | denied/s | denied per core-second | CPU µs per denied (Caddy + ask) | "
    "of which the ask server | shared core busy | generator core busy | shared core stolen | "
    "served | errors | ask p50 / p99 ms (probes, bad) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]


class Report(Protocol):
    def verdict(self, ok: bool) -> str: ...

    def add(self, title: str, *lines: str) -> None: ...


def _rounds(
    flood: Path,
    gated: Caddy,
    static: Caddy,
    gate_pid: int,
    allowed: str,
    gate_port: int,
    s: int,
    pairs: int,
) -> list[Round]:
    """A-B-B-A, `pairs` times: domaingate's Caddy, the static one twice, domaingate's again.

    Every round times an ask during the flood. In A: of an allowed name at the gate, which is
    answering the flood's asks too. In the first B: of Caddy's own static 403, the same ask with
    nothing behind it. In the second B: of an allowed name at the same gate, idle on the same
    core while Caddy floods itself: what the shared core alone (its run queue, and on a virtual
    machine the host) adds to any ask there, so A over it is the gate's own share of the tail.
    """
    rounds = []
    for k, caddy in enumerate((gated, static, static, gated) * pairs):
        ask_pids: list[int] = []
        probe, status = (gate_port, allowed), 200
        if caddy is gated:
            ask_pids = caddyflood.gate_pids(gate_pid)
        elif k % 4 == 1:
            probe, status = (static.static, "static.test"), 403
        round_ = caddyflood.flood(flood, caddy, ask_pids, s, probe=probe, probe_status=status)
        if caddy is static and k % 4 == 2:
            round_ = replace(round_, label=f"{round_.label} (ask: idle gate)")
        rounds.append(round_)
    return rounds


def _summary(report: Report, version: str, rounds: list[Round]) -> list[str]:
    verdict = report.verdict
    gated = [r for r in rounds if "domaingate" in r.label]
    static = [r for r in rounds if "static" in r.label]
    rate = sum(r.denied for r in gated) / sum(r.seconds for r in gated)
    base = sum(r.denied for r in static) / sum(r.seconds for r in static)
    core = sum(r.denied for r in gated) / sum(r.server_cpu for r in gated)
    core_base = sum(r.denied for r in static) / sum(r.server_cpu for r in static)
    p99 = max(r.probe["probe_p99_us"] for r in gated) / 1000
    p50 = max(r.probe["probe_p50_us"] for r in gated) / 1000
    idle = max(r.probe["probe_p99_us"] for r in static if "idle gate" in r.label) / 1000
    static_p99 = max(r.probe["probe_p99_us"] for r in static if "idle" not in r.label) / 1000
    steal = max(r.steal for r in rounds)
    return [
        f"| {version} | {rate / base:.2f} {verdict(rate / base >= 0.9)} | "
        f"{core / core_base:.2f} {verdict(core / core_base >= 0.9)} | {p50:.2f} | "
        f"{p99:.2f} {verdict(p99 <= 2)} | {idle:.2f} | {p99 / idle:.2f} | {static_p99:.2f} | "
        f"{100 * steal:.1f}% |"
    ]


def caddy_flood_section(report: Report, quick: bool) -> None:
    verdict = report.verdict
    db, _ = gatedb.cached(WORK / "gate.db", COUNT, DUE)
    allowed = gatedb.allowed_names(COUNT, DUE)[0]
    flood = caddyflood.build_flood()
    seconds = 5 if quick else 10
    binaries = caddyflood.caddy_binaries()
    gate = caddyflood.start_gate(db, SERVER_CORE, 1)
    ask = f"http://{HOST}:{gate.port}/tls-ask"
    summary = [
        "| Caddy | denied/s ratio (≥ 0.9) | per core-second ratio (≥ 0.9) | allowed ask p50 ms "
        "(worst round) | p99 ms (≤ 2, worst round) | idle gate's p99 ms, same core | "
        "p99 ratio, flooded ÷ idle gate | Caddy's static 403 ask p99 ms | "
        "core stolen by the host (worst round) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tables: list[str] = []
    profile = ""
    try:
        for version, binary in binaries:
            gated = caddyflood.start_caddy(binary, f"{version} domaingate", ask)
            static = caddyflood.start_caddy(binary, f"{version} static", None)
            try:
                for caddy in (gated, static):  # warm-up
                    caddyflood.flood(flood, caddy, [], 2)
                rounds = _rounds(
                    flood,
                    gated,
                    static,
                    gate.process.pid,
                    allowed,
                    gate.port,
                    seconds,
                    pairs=1 if quick else 2,
                )
                tables += [f"Caddy {version} ({binary}):", "", *HEADER]
                tables += [r.row() for r in rounds] + [""]
                summary += _summary(report, version, rounds)
                if version == binaries[-1][0]:
                    out = WORK / "gate-flood-profile.txt"
                    spy = profiling.record(gate.process.pid, out, seconds)
                    caddyflood.flood(flood, gated, [gate.process.pid], seconds)
                    profile = profiling.finish(spy, out)
            finally:
                common.stop(gated.process)
                common.stop(static.process)
    finally:
        common.stop(gate.process)
    report.add(
        "6. The gate at Caddy's calling pattern: a flood of ClientHellos with random SNI names",
        f"Caddy (each version found) with `on_demand_tls {{ ask … }}` and `tls internal "
        f"{{ on_demand }}`, pinned with the ask server to core {SERVER_CORE}; the C generator "
        f"(bench/flood.c, {caddyflood.CONNECTIONS} connections, epoll) on core {LOAD_CORE}, "
        f"which also times a new-connection ask of an allowed name at the gate every "
        f"{caddyflood.PROBE_MS} ms. Baseline: the same Caddy build asking a static 403 it "
        "serves itself. Its first round of each pair times an ask of that static 403; its "
        "second times the allowed ask at the gate, idle on the same core while Caddy floods "
        "itself: the latency the shared core alone adds to any ask there. `shared core "
        "stolen`: the share of the round the hypervisor gave the server core to someone else "
        "(/proc/stat). Rounds of "
        f"{seconds} s in A-B-B-A order{'' if quick else ', twice'}; gateway on {COUNT:,} domains, "
        f"VmRSS {gate.rss_mb:.0f} MiB {verdict(gate.rss_mb <= 300)}, start-up "
        f"{gate.startup:.2f} s {verdict(gate.startup < 5)}. `denied per core-second` is "
        "denied handshakes over the CPU Caddy and the ask server used: the rate one whole core "
        "would give, whatever share of it the machine's other work left.",
        "",
        *summary,
        "",
        *tables,
    )
    report.add("Profile: the gateway during the flood (py-spy)", profile)
    workers_section(report, db, flood, allowed, seconds)


def workers_section(report: Report, db: Path, flood: Path, allowed: str, s: int) -> None:
    """GATE_WORKERS 1 and 2: new-connection asks straight at the gate, as Caddy makes them."""
    verdict = report.verdict
    both = f"{LOAD_CORE},{SERVER_CORE}"
    lines = [
        "| GATE_WORKERS | cores | start-up s | gateway VmRSS MiB | worker VmRSS MiB | asks/s | "
        "gate CPU µs per ask | gate CPU per process (s) | generator core busy | "
        "allowed ask p50 / p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    runs = [(1, SERVER_CORE), (1, both), (2, both), (2, both), (1, both), (1, SERVER_CORE)]
    for workers, cores in runs:
        gate = caddyflood.start_gate(db, cores, workers)
        try:
            pids = caddyflood.gate_pids(gate.process.pid)
            caddyflood.flood(flood, None, pids, 2, asks_at=gate.port)
            before = [common.cpu_seconds(pid) for pid in pids]
            r = caddyflood.flood(
                flood, None, pids, s, probe=(gate.port, allowed), asks_at=gate.port
            )
            split = ", ".join(
                f"{common.cpu_seconds(pid) - b:.1f}" for pid, b in zip(pids, before, strict=True)
            )
            memory = caddyflood.worker_memory(gate.process.pid)
            worker_rss = ", ".join(f"{rss:.0f}" for rss, _ in memory) or "-"
            ok = all(rss <= 300 for rss, _ in memory)
            asks = r.denied + r.served
            lines.append(
                f"| {workers} | {cores} | {gate.startup:.2f} | {gate.rss_mb:.0f} | {worker_rss}"
                f"{' ' + verdict(ok) if memory else ''} | {asks / r.seconds:,.0f} | "
                f"{1e6 * r.ask_cpu / max(asks, 1):.0f} | {split} | "
                f"{100 * r.generator_cpu / r.seconds:.0f}% | "
                f"{r.probe['probe_p50_us'] / 1000:.2f} / {r.probe['probe_p99_us'] / 1000:.2f} |"
            )
        finally:
            common.stop(gate.process)
    report.add(
        "7. GATE_WORKERS: new-connection asks straight at the gate",
        f"The generator (bench/flood.c with FLOOD_HTTP=1: `GET /tls-ask?domain=<random>` as "
        f"Go's client sends it, one connection each, {caddyflood.CONNECTIONS} at once) on core "
        f"{LOAD_CORE}; the gateway with its workers pinned to the cores shown. With both cores "
        "the gate shares the generator's: there is no third core. A fresh gateway per run; "
        f"start-up includes loading {COUNT:,} domains in every worker.",
        "",
        *lines,
    )
