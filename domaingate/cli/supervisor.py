"""`domaingate up`: the gateway and the reconciler as two child processes, stopped together."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

STOP_TIMEOUT = 15.0


def up(config: Path | None) -> int:
    base = [sys.executable, "-m", "domaingate"]
    if config is not None:
        base += ["--config", str(config)]
    # Migrate once before either daemon starts, so they never race to create the schema.
    migrated = subprocess.run([*base, "migrate"], check=False)
    if migrated.returncode != 0:
        return migrated.returncode
    children = [subprocess.Popen([*base, "serve"]), subprocess.Popen([*base, "reconcile"])]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(children)
    codes = [child.returncode for child in children]
    if stopping:
        return 0
    # One daemon died on its own: report its failure.
    return next((code for code in codes if code), 1)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
