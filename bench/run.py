"""Run every benchmark and write the run's report to a file of its own.

    python -m bench.run [--quick]
                        [--only gate,dns,gate-pass,certs,edges,caddy-flood,postgres,fleet-writes,
                                fence,fleet-snapshot,fleet,tenant-flood]
                        [--candidate /path/to/patched/repo] [--output FILE] [--record]

The report goes to `--output` (by default a file named for the run's start in the work folder),
never over `bench/RESULTS.md`, the curated history of runs with their readings. `--record` also
puts the run at the head of that history, above the earlier runs, for a run worth keeping.

`--candidate` also measures the gate's start-up and memory, its throughput ratio and the
certificate scan with another checkout (for example a private copy with an optimisation applied),
so both figures come from the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    caddyreport,
    certbench,
    common,
    dnsbench,
    edgebench,
    fencebench,
    findings,
    fleet_freshness,
    fleet_snapshot,
    fleet_writes,
    gatebench,
    gatedb,
    passbench,
    pgreport,
    profiling,
    tenant_flood,
)
from bench.common import WORK

RESULTS = common.REPO / "bench" / "RESULTS.md"


class Report:
    def __init__(self) -> None:
        self.sections: list[str] = []
        self.verdicts = findings.Verdicts()

    def verdict(self, ok: bool) -> str:
        """A target's verdict for the section being built; the findings count them."""
        return self.verdicts.give(ok)

    def add(self, title: str, *lines: str) -> None:
        self.verdicts.close(title)
        self.sections.append("\n".join([f"## {title}", "", *lines, ""]))
        print(f"== {title}", *lines, sep="\n", flush=True)


def _env(repo: Path) -> dict[str, str]:
    # The checkout under test first (it is also the working directory), then this one for `bench`.
    return dict(os.environ, PYTHONPATH=f"{repo}:{common.REPO}")


def py(module: str, *args: str, repo: Path = common.REPO, timeout: float = 900) -> dict[str, Any]:
    env = _env(repo)
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, check=True, cwd=repo, env=env,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def spy_command(out: Path, module: str, *args: str, repo: Path = common.REPO) -> str:
    """Run `python -m module args` under py-spy; returns the profile summary."""
    if not profiling.available():
        return "py-spy not installed: no profile."
    env = _env(repo)
    subprocess.run(
        ["py-spy", "record", "--rate", "250", "--format", "raw", "--output", str(out), "--",
         sys.executable, "-m", module, *args],
        capture_output=True, timeout=900, check=True, cwd=repo, env=env,
    )  # fmt: skip
    return profiling.summarise(out)


# --- 1-3: the gate -------------------------------------------------------------------------------


def gate_section(report: Report, quick: bool, candidate: Path | None) -> None:
    verdict = report.verdict
    count, due = 1_000_000, 10_000
    db, built = gatedb.cached(WORK / "gate.db", count, due)
    allowed = gatedb.allowed_names(count, due)
    paths = WORK / "paths.txt"
    gatedb.write_paths(paths, allowed)
    report.add(
        "Setup: the gate's database",
        f"{count:,} domains, {len(allowed):,} in allowed statuses (verified/active/expiring), "
        f"{due:,} pending names in the knot zone (due for a check), the rest pending/failed. "
        + (f"Built in {built:.1f} s." if built is not None else "Reused the cached build.")
        + " Schema from the project's migrations; the two `seq` triggers were dropped for the bulk "
        "insert and recreated, with `seq` set to the row id (what the triggers would produce).",
        f"Request paths: {paths} (20,000 lines, half allowed names, half random unknown names), "
        "picked at random by a wrk Lua script.",
    )
    rounds, seconds = (1, 5) if quick else (2, 10)
    gate = gatebench.start_gate(db)
    baseline = gatebench.start_baseline(db)
    try:
        tp = gatebench.throughput(gate, baseline, paths, rounds=rounds, seconds=seconds)
        lines = [
            "| run | req/s | p50 ms | p99 ms | requests | wrk notes |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for g, b in tp.runs:
            lines += [g.row(), b.row()]
        lines += ["", "| pair | throughput ratio (≥ 0.9) | p99 ratio (≤ 1.2) |", "|---|---:|---:|"]
        for n, (rps, p99) in enumerate(tp.ratios(), 1):
            lines.append(
                f"| {n} | {rps:.2f} {verdict(rps >= 0.9)} | {p99:.2f} {verdict(p99 <= 1.2)} |"
            )
        lines.append("")
        lines.append("Non-2xx responses are the 403 denials of the unknown half: expected.")
        report.add("1. Gate throughput: /tls-ask vs a bare aiohttp set lookup", *lines)

        report.add(
            "2. Memory and start-up with 1,000,000 domains",
            "| process | start-up s (exec → /readyz 200) | VmRSS MiB | VmHWM MiB |",
            "|---|---:|---:|---:|",
            f"| gateway | {gate.startup:.2f} {verdict(gate.startup < 5)} | "
            f"{gate.rss_mb:.0f} {verdict(gate.rss_mb <= 300)} | {gate.hwm_mb:.0f} |",
            f"| baseline (set only) | {baseline.startup:.2f} | {baseline.rss_mb:.0f} | "
            f"{baseline.hwm_mb:.0f} |",
        )
        prof = gatebench.profile_gate(gate, paths, WORK / "gate-profile.txt")
        report.add("Profile: the gateway under wrk load (py-spy, 8 s)", prof)

        changes = 20 if quick else 100
        targets = gatedb.pending_ids(count, due, changes)
        fresh = gatebench.freshness(gate, db, targets, paths)
        report.add(
            "3. Freshness under load",
            f"{changes} pending domains set to `verified` one at a time by a second sqlite3 "
            "connection while wrk loads the gate; /tls-ask polled every 10 ms until 200.",
            "",
            "| changes | seen | timeouts (5 s) | p50 ms | max ms | wrk req/s meanwhile |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {changes} | {len(fresh.delays)} | {fresh.timeouts} | {fresh.p50 * 1000:.0f} | "
            f"{fresh.max * 1000:.0f} {verdict(fresh.max <= 1.0 and not fresh.timeouts)} | "
            f"{fresh.load_rps:,.0f} |",
        )
    finally:
        common.stop(gate.process)
        common.stop(baseline.process)
    if candidate is not None:
        candidate_gate(report, candidate, db, paths, seconds)


def candidate_gate(report: Report, candidate: Path, db: Path, paths: Path, seconds: int) -> None:
    lines = [
        f"Same database, `{candidate}` (PYTHONPATH) against this checkout, alternating.",
        "",
        "| checkout | start-up s | VmRSS MiB | VmHWM MiB |",
        "|---|---:|---:|---:|",
    ]
    for _ in range(2):
        for label, repo in (("this checkout", common.REPO), ("candidate", candidate)):
            server = gatebench.start_gate(db, repo=repo)
            common.stop(server.process)
            lines.append(
                f"| {label} | {server.startup:.2f} | {server.rss_mb:.0f} | {server.hwm_mb:.0f} |"
            )
    report.add("Candidate: gate start-up and memory", *lines)

    servers = {
        "this checkout": gatebench.start_gate(db),
        "candidate": gatebench.start_gate(db, repo=candidate),
        "baseline": gatebench.start_baseline(db),
    }
    try:
        for server in servers.values():
            common.wrk("warm-up", server.port, paths, seconds=2)
        rows: list[tuple[str, common.WrkResult]] = []
        for n in range(1, 3):
            for label, server in servers.items():
                rows.append(
                    (label, common.wrk(f"{label} #{n}", server.port, paths, seconds=seconds))
                )
    finally:
        for server in servers.values():
            common.stop(server.process)
    table = [
        "| run | req/s | p50 ms | p99 ms | requests | wrk notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    table += [r.row() for _, r in rows]
    means = {label: sum(r.rps for lab, r in rows if lab == label) / 2 for label in servers}
    p99s = {label: max(r.p99_ms for lab, r in rows if lab == label) for label in servers}
    base = means["baseline"]
    table += [
        "",
        "| checkout | mean req/s | ratio vs baseline | worst p99 ms | p99 ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    table += [
        f"| {label} | {means[label]:,.0f} | {means[label] / base:.2f} | {p99s[label]:.2f} | "
        f"{p99s[label] / p99s['baseline']:.2f} |"
        for label in servers
    ]
    report.add(
        "Candidate: gate throughput (this checkout, candidate, baseline; alternating)", *table
    )


# --- 4: the reconciler ---------------------------------------------------------------------------


def dns_section(report: Report, quick: bool, candidate: Path | None) -> None:
    verdict = report.verdict
    from tests.support.knot import Knot

    n = 2_000 if quick else 10_000
    with Knot(dnsbench.zones(n)) as knot:
        port = str(knot.port)
        counted = py("bench.dnsbench", "count", port, "200")
        runs: list[tuple[str, dict[str, Any]]] = []
        for _ in range(1 if quick else 2):
            runs.append(("bare dnspython", py("bench.dnsbench", "bare", port, str(n))))
            runs.append(("DnsChecker.check", py("bench.dnsbench", "checker", port, str(n))))
        lines = [
            f"knot 127.0.0.1:{port} serving `bench.test` ({n:,} CNAMEs to web.apps.localhost), "
            "`apps.localhost` (the target) and `test.` (the harness's delegating parent). "
            f"Concurrency {dnsbench.CONCURRENCY} domains (CHECK_CONCURRENCY default).",
            f"Queries per domain sent by DnsChecker.check (counted over 200): "
            f"{counted['per_domain']} — the bare client sends the same 7 (A, AAAA, NS, CAA at "
            "the name, at its CNAME target, at bench.test and test).",
            "",
            "| run | seconds | domains/s | checks passed |",
            "|---|---:|---:|---:|",
        ]
        for label, r in runs:
            lines.append(f"| {label} | {r['seconds']:.2f} | {r['rate']:,.0f} | {r['ok']:,} |")
        pairs = [(runs[i + 1][1]["rate"] / runs[i][1]["rate"]) for i in range(0, len(runs), 2)]
        lines += ["", "Ratio checker/bare (≥ 0.7): " + ", ".join(
            f"{r:.2f} {verdict(r >= 0.7)}" for r in pairs)]  # fmt: skip

        bare_rate = sum(r["rate"] for label, r in runs if label.startswith("bare")) / len(pairs)
        sched_lines = [
            "",
            f"The real reconciler daemon (`nice -n {passbench.unit_nice()} python -m domaingate "
            "reconcile`, the niceness of its systemd unit, unpinned like the bare client) over "
            f"{n:,} due pending domains in a fresh database, against the same knot; "
            "rate = domains over the span of the `last_checked_at` stamps it wrote. Then the "
            "in-process `DnsSchedule` with every check answered by one canned real report: the "
            "write path alone, without DNS.",
            "",
            "| run | seconds | checks | verified | domains/s | ratio vs bare (≥ 0.7) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for _ in range(1 if quick else 2):
            db = WORK / "schedule.db"
            gatedb.build(db, n, n)
            done = passbench.run_pass(db, knot.port, n)
            ratio = done.rate / bare_rate
            sched_lines.append(
                f"| reconciler daemon | {done.seconds:.1f} | {done.checked:,} | "
                f"{done.verified:,} | {done.rate:,.0f} | {ratio:.2f} {verdict(ratio >= 0.7)} |"
            )
        db = WORK / "schedule.db"
        gatedb.build(db, n, n)
        r = py("bench.dnsbench", "schedule-canned", port, str(n), str(db), "1.0", "120")
        sched_lines.append(
            f"| DnsSchedule, canned answers | {r['seconds']:.1f} | {r['checks']:,} | "
            f"{r['verified']:,} | {r['rate']:,.0f} | {r['rate'] / bare_rate:.2f} |"
        )
        report.add("4. Reconciler: full DNS check pass vs bare dnspython", *lines, *sched_lines)
        prof = spy_command(WORK / "dns-profile.txt", "bench.dnsbench", "checker", port, str(n))
        report.add("Profile: DnsChecker.check pass (py-spy)", prof)


def gate_pass_section(report: Report, quick: bool) -> None:
    """4b: the gate's throughput while the real reconciler makes a DNS pass on the gate's core."""
    verdict = report.verdict
    from tests.support.knot import Knot

    n = 10_000
    db, _ = gatedb.cached(WORK / "gate.db", 1_000_000, n)
    paths = WORK / "paths.txt"
    gatedb.write_paths(paths, gatedb.allowed_names(1_000_000, n))
    seconds = 5 if quick else 10
    with Knot(dnsbench.zones(n)) as knot:
        # knot stands in for resolvers that run elsewhere: it shares wrk's core, not the gate's.
        knot_pid = int((knot.workdir / "run" / "knot.pid").read_text().strip())
        common.pin(knot_pid, int(common.LOAD_CORE))
        gate = gatebench.start_gate(db)
        pid = gate.process.pid
        usage: list[str] = []

        def measured(label: str) -> common.WrkResult:
            before, started = common.cpu_seconds(pid), time.monotonic()
            result = common.wrk(label, gate.port, paths, seconds=seconds)
            share = (common.cpu_seconds(pid) - before) / (time.monotonic() - started)
            usage.append(f"{label}: gateway CPU {100 * share:.0f}% of the core")
            return result

        try:
            common.wrk("warm-up", gate.port, paths, seconds=2)
            idle = measured("gate idle")
            recon = passbench.start(db, knot.port, core=common.SERVER_CORE)
            try:
                passbench.wait_started(db, n)
                before = passbench.progress(db, n)
                recon_cpu = common.cpu_seconds(recon.pid)
                loaded = measured("gate + reconciler pass")
                recon_cpu = common.cpu_seconds(recon.pid) - recon_cpu
                during = passbench.progress(db, n)
                prof = gatebench.profile_gate(gate, paths, WORK / "gate-pass-profile.txt")
            finally:
                common.stop(recon)
            after = measured("gate idle again")
        finally:
            common.stop(gate.process)
    ratio = loaded.rps / ((idle.rps + after.rps) / 2)
    checked = during.checked - before.checked
    report.add(
        "4b. Gate throughput while a reconciler pass runs",
        "The real reconciler daemon (as in 4: `nice -n "
        f"{passbench.unit_nice()}`, its unit's niceness) makes its DNS pass over the {n:,} due "
        "names of the gate's own 1M database, pinned to the gate's core (core "
        f"{common.SERVER_CORE}): the two compete for one CPU, the worst case, where only the "
        f"priority keeps the gate whole. wrk and knot share core {common.LOAD_CORE}.",
        "",
        "| run | req/s | p50 ms | p99 ms | requests | wrk notes |",
        "|---|---:|---:|---:|---:|---|",
        idle.row(),
        loaded.row(),
        after.row(),
        "",
        f"Ratio loaded / mean idle (≥ 0.8): {ratio:.2f} {verdict(ratio >= 0.8)}",
        "",
        f"During the loaded run the reconciler checked and wrote {checked:,} domains "
        f"({checked / seconds:,.0f}/s, {recon_cpu:.1f} CPU-s; {during.checked:,} of {n:,} by "
        "its end), each write committed to the database the gate's watcher follows.",
        "",
        "; ".join(usage) + ".",
    )
    report.add("Profile: the gateway under wrk load during the reconciler pass (py-spy, 8 s)", prof)


# --- 5: certificates -----------------------------------------------------------------------------


def certs_section(report: Report, quick: bool, candidate: Path | None) -> None:
    verdict = report.verdict
    n = 10_000 if quick else 100_000
    storage, built = certbench.cached(WORK, n)
    results = [("this checkout", py("bench.certbench", str(storage), "3"))]
    if candidate is not None:
        results.append(("candidate", py("bench.certbench", str(storage), "3", repo=candidate)))
        results.append(("this checkout", py("bench.certbench", str(storage), "3")))
        results.append(("candidate", py("bench.certbench", str(storage), "3", repo=candidate)))
    lines = [
        f"{n:,} certificates under one issuer directory, one P-256 key, each leaf naming its "
        "directory. "
        + (f"Generated in {built:.0f} s (process pool)." if built else "Reused the cached tree.")
        + " Page cache warm (the tree fits in memory).",
        "",
        "| checkout | first scan s (≤ 60) | unchanged rescans s (≤ 2) | found | parsed |",
        "|---|---:|---|---:|---:|",
    ]
    for label, r in results:
        rescans = ", ".join(f"{s:.2f}" for s in r["rescans"])
        ok = max(r["rescans"]) <= 2
        lines.append(
            f"| {label} | {r['first']:.2f} {verdict(r['first'] <= 60)} | {rescans} {verdict(ok)} "
            f"| {r['found']:,} | {r['parsed']:,} |"
        )
    job = py("bench.certbench", "job", str(storage), str(WORK / "certjob.db"), str(n))
    lines += [
        "",
        f"The reconciler's whole certificate job (`Reconciler.scan_certs`: scan, plan, write) "
        f"over a fresh database of {n:,} verified domains named like the tree's certificates "
        "(`python -m bench.certbench job STORAGE DB N`):",
        "",
        "| run | plan | wall s | CPU s | changes written |",
        "|---|---|---:|---:|---:|",
    ]
    for run in job["runs"]:
        plan = "every domain" if run["full"] else "what changed"
        lines.append(
            f"| {run['label']} | {plan} | {run['wall']:.2f} | {run['cpu']:.2f} | "
            f"{run['applied']:,} |"
        )
    report.add("5. Certificate scan", *lines)
    prof = spy_command(WORK / "certs-profile.txt", "bench.certbench", str(storage), "6")
    report.add("Profile: CertScanner, first scan + 6 rescans (py-spy)", prof)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer domains")
    parser.add_argument(
        "--only",
        default="gate,dns,gate-pass,certs,edges,caddy-flood,postgres,fleet-writes,fence,"
        "fleet-snapshot,fleet,tenant-flood",
    )
    parser.add_argument("--candidate", type=Path, help="a patched checkout to compare")
    parser.add_argument("--output", type=Path, help="where to write the report")
    parser.add_argument(
        "--record", action="store_true", help=f"also put the run at the head of {RESULTS.name}"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    info = common.machine()
    started = datetime.datetime.now(datetime.UTC)
    report = Report()
    command = "python -m bench.run " + " ".join(sys.argv[1:])
    if "gate" in only:
        gate_section(report, args.quick, args.candidate)
    if "dns" in only:
        dns_section(report, args.quick, args.candidate)
    if "gate-pass" in only:
        gate_pass_section(report, args.quick)
    if "certs" in only:
        certs_section(report, args.quick, args.candidate)
    if "edges" in only:
        edgebench.edges_section(report, args.quick, py)
    if "caddy-flood" in only:
        caddyreport.caddy_flood_section(report, args.quick)
    if "postgres" in only:
        pgreport.postgres_section(report, args.quick, py)
    if "fleet-writes" in only:
        fleet_writes.fleet_writes_section(report, args.quick, py)
    if "fence" in only:
        fencebench.fence_section(report, args.quick)
    if "fleet-snapshot" in only:
        fleet_snapshot.section(report, args.quick)
    if "fleet" in only:
        fleet_freshness.fleet_section(report, args.quick, py)
    if "tenant-flood" in only:
        tenant_flood.section(report, args.quick, py)
    took = (datetime.datetime.now(datetime.UTC) - started).seconds
    header = [
        "# domaingate benchmarks",
        "",
        "Written by `bench/run.py`. Every figure is compared with a baseline measured in the same "
        "run; absolute numbers move with the machine's load.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, took {took} s",
        f"- machine: {info['nproc']} cores, {info['cpu']}, {info['memory']}, "
        f"Python {info['python']}, Linux {info['kernel']}",
        f"- load average before: {info['load']}, after: {common.load()}",
        f"- command: `{command.strip()}` (from the repository root)",
        "- gateway: `DOMAINGATE_DB=… DOMAINGATE_INTERNAL_LISTEN=127.0.0.1:<port> "
        "DOMAINGATE_API_LISTEN=127.0.0.1:<port> taskset -c 1 python -m domaingate serve`; "
        "baseline: `taskset -c 1 python -m bench.baseline_server DB PORT`; load: "
        "`taskset -c 0 wrk -t1 -c50 -d10s --latency -s paths.lua http://127.0.0.1:<port> "
        "-- paths.txt`",
        "- DNS: `python -m bench.dnsbench bare|checker|count|schedule-canned …` and the real "
        "daemon (`bench/passbench.py`: `nice -n 10 python -m domaingate reconcile`) against knot "
        "(tests/support/knot.py `Knot`); certificates: `python -m bench.certbench STORAGE 3` and "
        f"`python -m bench.certbench job STORAGE DB N`; work files in {WORK}",
        "",
    ]
    body = (
        "\n".join(header)
        + "\n"
        + findings.render(report.verdicts, WORK)
        + "\n"
        + "\n".join(report.sections)
    )
    output = args.output or WORK / f"results-{started:%Y%m%d-%H%M%S}.md"
    output.write_text(body, encoding="utf-8")
    print(f"wrote {output}")
    if args.record:
        record(body)
        print(f"recorded at the head of {RESULTS}")


def record(run: str) -> None:
    """Put `run` at the head of the history in RESULTS, below its title: newest first, the
    earlier runs and their readings kept as they are."""
    history = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    title, _, earlier = history.partition("\n")
    # The run's own report starts with the same title: it is the history's, said once.
    entry = run.partition("\n")[2].lstrip("\n") if run.startswith(title) else run
    RESULTS.write_text(
        f"{title}\n\n{entry.rstrip()}\n\n---\n{earlier}" if title else run, encoding="utf-8"
    )


if __name__ == "__main__":
    main()
