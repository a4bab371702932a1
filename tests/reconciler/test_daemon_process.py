"""The reconciler as its unit runs it (`domaingate reconcile`): settings errors, logging, a
graceful stop on SIGTERM, and a restart after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from domaingate.cli.main import main
from tests.support.net import HOST, free_port

# Real reconciler processes.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_a_bad_setting_stops_the_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOMAINGATE_CERT_SCAN_INTERVAL", "-5")
    assert main(["reconcile"]) == 2
    assert "DOMAINGATE_CERT_SCAN_INTERVAL" in capsys.readouterr().err


def reconciler(tmp_path: Path) -> subprocess.Popen[str]:
    """`domaingate reconcile` on a database in `tmp_path`, logging at INFO to a pipe."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DOMAINGATE_DB": str(tmp_path / "x.db"),
        "DOMAINGATE_CADDY_STORAGE": str(tmp_path / "caddy"),
        "DOMAINGATE_RESOLVERS": "127.0.0.1:9",
        "DOMAINGATE_RECONCILER_LISTEN": f"{HOST}:{free_port()}",
        "DOMAINGATE_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "domaingate", "reconcile"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_stops_the_daemon_gracefully(tmp_path: Path) -> None:
    process = reconciler(tmp_path)
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "reconciler started" in line:
                break
        assert any("reconciler started" in line for line in lines), "".join(lines)
        process.send_signal(signal.SIGTERM)
        _out, rest = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    lines += rest.splitlines(keepends=True)
    assert process.returncode == 0, "".join(lines)
    text = "".join(lines)
    assert "reconciler stopping" in text
    assert "released the reconciler lease" in text
    assert "Traceback" not in text
    # One record per line, level first, no timestamp (journald adds its own).
    assert all(line.split(" ", 1)[0] in {"INFO", "WARNING"} for line in lines), text


def _until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """stderr lines of `process` up to the first holding `marker` (fails after `timeout` s)."""
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    pytest.fail(f"no {marker!r} within {timeout} s:\n{''.join(lines)}")


def test_a_reconciler_restarted_after_a_kill_takes_its_lease_at_once(tmp_path: Path) -> None:
    first = reconciler(tmp_path)
    try:
        _until(first, "holding the reconciler lease", 15)
        first.kill()  # SIGKILL: no release of the lease, which has 30 s left
        first.communicate(timeout=5)
    finally:
        if first.poll() is None:
            first.kill()
    second = reconciler(tmp_path)
    try:
        began = time.monotonic()
        text = _until(second, "holding the reconciler lease", 15)
        assert time.monotonic() - began < 10  # not the 30 s the lease had left
        assert "ended without releasing it; taking over" in text
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=15)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0
