"""Shared helpers: machine facts, ports, processes pinned to a core, wrk runs and their parsing."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The tests' own port choice: claimed machine-wide, below the kernel's ephemeral range.
from tests.support.net import HOST as HOST
from tests.support.net import free_port as free_port

REPO = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/domaingate-bench"))
SERVER_CORE = "1"
LOAD_CORE = "0"


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "load": load(),
    }


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


def http_get(url: str, timeout: float = 1.0) -> int:
    """The status of GET url (0 when unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_status(url: str, status: int, timeout: float, interval: float = 0.01) -> float:
    """Seconds until GET url answers `status`; raises after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if http_get(url, timeout=0.5) == status:
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, core: int) -> None:
    """Pin every thread of a process to one core."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass(frozen=True)
class WrkResult:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str

    def row(self) -> str:
        return (
            f"| {self.label} | {self.rps:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | "
            f"{self.requests:,} | {self.errors or '-'} |"
        )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


LUA = """\
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def wrk(
    label: str, port: int, paths_file: Path, *, seconds: int = 10, connections: int = 50
) -> WrkResult:
    script = WORK / "paths.lua"
    script.write_text(LUA, encoding="utf-8")
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "-s", str(script), f"http://{HOST}:{port}", "--", str(paths_file),
    ]  # fmt: skip
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = ""
    if match := re.search(r"Socket errors:.*", out):
        errors = match.group(0)
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += f" non-2xx {match.group(1)}".strip()
    return WrkResult(label, rps, p50, p99, total, errors.strip())


def run_logged(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
