"""py-spy recordings, summarised as the functions where the samples are (self and total)."""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path


def available() -> bool:
    return shutil.which("py-spy") is not None


def record(
    pid: int, out: Path, seconds: int, *, subprocesses: bool = False
) -> subprocess.Popen[bytes] | None:
    if not available():
        return None
    command = [
        *("py-spy", "record", "--pid", str(pid), "--duration", str(seconds)),
        *("--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"),
    ]
    if subprocesses:
        command.append("--subprocesses")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(spy: subprocess.Popen[bytes] | None, out: Path, top: int = 14) -> str:
    if spy is None:
        return "py-spy not installed: no profile."
    try:
        spy.wait(timeout=120)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    if not out.exists():
        return "py-spy wrote no profile (ptrace not permitted?)."
    return summarise(out, top)


def _frame(text: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"; keep the function and the file's tail.
    name, _, where = text.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    tail = "/".join(path.split("/")[-2:])
    return f"{name} ({tail})"


def summarise(out: Path, top: int = 14) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in out.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        # Skip the thread/process label py-spy puts first.
        frames = [f for f in frames if "(" in f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "no samples"
    lines = [f"{samples} samples.", "", "| self % | function |", "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f} | `{f}` |" for f, n in own.most_common(top)]
    lines += ["", "| total % | function |", "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f} | `{f}` |" for f, n in total.most_common(top + 6)]
    return "\n".join(lines)
