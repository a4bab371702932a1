"""The real reconciler daemon's DNS pass: `python -m domaingate reconcile` over a database whose
first N domains are due, against knot, run at the priority its systemd unit gives it.

The pass's rate is N over the span of the `last_checked_at` stamps the daemon wrote (first check
to last), so the daemon's start-up and its first poll tick are not counted against it. The
database is a SQLite file or a PostgreSQL URL (`bench.pgdb` builds the same rows there).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import common
from bench.common import HOST, WORK

UNIT = common.REPO / "systemd" / "domaingate-reconciler.service"


def unit_nice() -> int:
    """The `Nice=` of the reconciler's systemd unit (0 when it sets none)."""
    match = re.search(r"^Nice=(-?\d+)\s*$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Pass:
    checked: int
    seconds: float  # first check to last check
    verified: int

    @property
    def rate(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0


def start(db: Path | str, knot_port: int, *, core: str | None = None) -> subprocess.Popen[bytes]:
    """The daemon at its unit's niceness, pinned to `core` if one is given."""
    storage = WORK / "caddy-empty"
    (storage / "certificates").mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        PYTHONPATH=str(common.REPO),
        DOMAINGATE_DB=str(db),
        DOMAINGATE_RESOLVERS=f"{HOST}:{knot_port}",
        DOMAINGATE_CADDY_STORAGE=str(storage),
        DOMAINGATE_LOG_LEVEL="WARNING",
        DOMAINGATE_RECONCILER_LISTEN=f"{HOST}:{common.free_port()}",
    )
    pinned = ["taskset", "-c", core] if core is not None else []
    command = ["nice", "-n", str(unit_nice()), *pinned, sys.executable, "-m", "domaingate",
               "reconcile"]  # fmt: skip
    return common.run_logged(command, WORK / "reconciler.log", env=env)


_PROGRESS = (
    "SELECT count(last_checked_at), min(last_checked_at), max(last_checked_at),"
    " sum(CASE WHEN status = 'verified' THEN 1 ELSE 0 END) FROM domains WHERE id <= {}"
)


def progress(db: Path | str, n: int) -> Pass:
    """How far the pass over domains 1..n has got."""
    if isinstance(db, str):
        with psycopg.connect(db, autocommit=True) as pg:
            row = pg.execute(_PROGRESS.format("%s").encode(), (n,)).fetchone()
    else:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute(_PROGRESS.format("?"), (n,)).fetchone()
    assert row is not None
    checked, first, last, verified = row
    seconds = (last - first) if checked else 0.0
    return Pass(checked=int(checked), seconds=float(seconds), verified=int(verified or 0))


def wait_started(db: Path | str, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while progress(db, n).checked == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the reconciler checked nothing")
        time.sleep(0.1)


def run_pass(db: Path | str, knot_port: int, n: int, timeout: float = 600) -> Pass:
    """Start the daemon, wait until all n domains were checked, stop it."""
    process = start(db, knot_port)
    try:
        deadline = time.monotonic() + timeout
        while (done := progress(db, n)).checked < n:
            if process.poll() is not None:
                raise RuntimeError(f"the reconciler exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"pass incomplete after {timeout} s: {done}")
            time.sleep(0.5)
        return done
    finally:
        common.stop(process)
