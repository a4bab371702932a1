"""The real gateway process under a notify socket, as systemd runs it with `Type=notify`: it says
READY=1 only once Caddy can use it (the allowlist loaded, /tls-ask answering from it, the API
listening), and STOPPING=1 when asked to stop. Caddy's unit is ordered after it
(systemd/caddy.service.d/domaingate.conf), so this is what keeps Caddy from asking a closed gate.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domaingate.settings import Listen
from tests.support.domaingate import clean_environ, run_cli
from tests.support.net import HOST, free_port

# A real gateway process with a loaded allowlist.
pytestmark = pytest.mark.slow

# Enough names that loading them takes the gateway a noticeable while after it has started.
ALLOWED = 20_000
START_TIMEOUT = 60.0


def _insert_domains(db: Path) -> None:
    now = time.time()
    rows = [(f"shop{i}.acme.com", "verified") for i in range(ALLOWED)]
    rows.append(("pending.acme.com", "pending"))
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(
                "INSERT INTO apps (name, tenant_id, created_at, updated_at)"
                " SELECT 'web', id, ?, ? FROM tenants WHERE name = 'acme'",
                (now, now),
            )
            conn.executemany(
                "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
                " created_at, updated_at) SELECT ?, id, 'web', ?, 'subdomain', 'cname', ?, ?, ?"
                " FROM tenants WHERE name = 'acme'",
                [(name, status, "dg_" + "0" * 64, now, now) for name, status in rows],
            )
    finally:
        conn.close()


def _status(listen: Listen, path: str) -> int:
    conn = http.client.HTTPConnection(listen.host, listen.port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _accepts(listen: Listen) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((listen.host, listen.port)) == 0


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield sock, str(path)


def test_ready_only_once_the_gate_answers_and_stopping_at_stop(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    internal = Listen(HOST, free_port())
    api = Listen(HOST, free_port())
    env = clean_environ()
    env.pop("NOTIFY_SOCKET", None)
    env.update(
        DOMAINGATE_DB=str(tmp_path / "domaingate.db"),
        DOMAINGATE_INTERNAL_LISTEN=str(internal),
        DOMAINGATE_API_LISTEN=str(api),
        PYTHONUNBUFFERED="1",
    )
    for args in (["migrate"], ["tenant", "create", "acme"]):
        run_cli(env, tmp_path, *args)
    _insert_domains(tmp_path / "domaingate.db")

    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "domaingate", "serve"],
            env={**env, "NOTIFY_SOCKET": address},
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        refused = 0
        sock.settimeout(0.01)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                ready = sock.recv(4096)
                break
            except TimeoutError:
                pass
            assert gateway.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "no READY=1 " + log.read_text(encoding="utf-8")
            refused += not _accepts(internal)

        # The first requests after READY=1, with no retry: the gate answers from the whole
        # allowlist, and the API listens too.
        assert _status(internal, f"/tls-ask?domain=shop{ALLOWED - 1}.acme.com") == 200
        assert _status(internal, "/tls-ask?domain=shop0.acme.com") == 200
        assert _status(internal, "/tls-ask?domain=pending.acme.com") == 403
        assert _status(api, "/api/v1/openapi.json") == 200
        # The gateway was seen starting with its gate closed, and said nothing then.
        assert refused > 0

        lines = ready.decode("utf-8").split("\n")
        assert lines == ["READY=1", f"STATUS=serving: internal {internal}, API {api}"]

        gateway.send_signal(signal.SIGTERM)
        sock.settimeout(30)
        assert sock.recv(4096) == b"STOPPING=1"
        assert gateway.wait(timeout=30) == 0, log.read_text(encoding="utf-8")
        # Nothing else was sent: one READY=1, one STOPPING=1.
        sock.settimeout(0.01)
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    finally:
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.wait()
