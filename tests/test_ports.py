"""The test harness's ports: two test processes never hand out the same one, and none comes from
the range the kernel takes outgoing connections' source ports from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import net

ROOT = Path(__file__).resolve().parent.parent
# Each chooser holds its claims until told to go (its stdin closes): a claim ends with its process.
CHOOSE = """
import sys
from tests.support.net import free_port
print(*(free_port() for _ in range(200)), flush=True)
sys.stdin.read()
"""


def test_processes_choosing_at_once_never_share_a_port() -> None:
    others = [
        subprocess.Popen(
            [sys.executable, "-c", CHOOSE],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    mine = {net.free_port() for _ in range(200)}
    chosen = [mine]
    for other in others:
        assert other.stdout is not None
        chosen.append({int(port) for port in other.stdout.readline().split()})
    for other in others:
        other.communicate(timeout=60)
        assert other.returncode == 0
    assert all(len(ports) == 200 for ports in chosen)
    assert len(set().union(*chosen)) == 800


def test_ports_are_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(1024 <= net.free_port() < low for _ in range(50))
