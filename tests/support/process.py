"""A child process of the harness: its output in a log file, stopped with SIGTERM, then SIGKILL.

Every daemon the tests start (Pebble, Caddy, domaingate's gateway and reconciler) runs as a
`Process` in a session of its own, so stopping it also takes down whatever it left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


class Process:
    """A child process whose stdout and stderr go to a log file; stopped with SIGTERM."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log
        self._popen: subprocess.Popen[bytes] | None = None
        self.returncodes: list[int] = []

    def start(self) -> None:
        assert self._popen is None, f"{self.name} already running"
        with self.log_path.open("ab") as log:
            log.write(f"=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def check_alive(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._popen.returncode}:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (None if not
        started). Children it left in its session are killed too."""
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)  # stragglers of its own session, if any
        self.returncodes.append(popen.returncode)
        return popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
