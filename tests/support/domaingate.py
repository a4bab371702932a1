"""domaingate's daemons as real processes: the gateway (`python -m domaingate serve`) and the
reconciler (`python -m domaingate reconcile`), configured by DOMAINGATE_* variables alone.

`Domaingate(workdir, env)` takes the variables without their prefix. Each gets free loopback
ports for its listeners and, unless `env` says otherwise (`DB`: another file, or a PostgreSQL
URL), its database in `workdir`.
With `webhook_interval`, the reconciler is this module run as a program instead (`main`): the
same command with one tuning changed, so crash tests need not wait seconds for each delivery.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from domaingate.settings import Listen
from tests.support.net import HOST, free_port
from tests.support.postgres import Cluster
from tests.support.process import Process
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "dg_e2e_admin_token_0123456789abcdef"
MODULE = "tests.support.domaingate"


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: Mapping[str, str]


def clean_environ() -> dict[str, str]:
    """This process's environment without its DOMAINGATE_* variables (nor systemd's
    STATE_DIRECTORY): a domaingate process a test starts is configured by what the test sets
    alone, never by the shell running the tests, and keeps its state in its working directory."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOMAINGATE_") and k != "STATE_DIRECTORY"
    }


def run_domaingate(
    env: Mapping[str, str], cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m domaingate ARGS` with `env` in `cwd`, whatever its exit."""
    return subprocess.run(
        [sys.executable, "-m", "domaingate", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(env: Mapping[str, str], cwd: Path, *args: str) -> str:
    """`python -m domaingate ARGS` with `env` in `cwd`; its stdout. A non-zero exit raises."""
    result = run_domaingate(env, cwd, *args)
    if result.returncode != 0:
        raise RuntimeError(f"domaingate {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


class Domaingate:
    """domaingate's gateway and reconciler as `python -m domaingate serve|reconcile`."""

    def __init__(
        self, workdir: Path, env: Mapping[str, str], *, webhook_interval: float | None = None
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.internal = Listen(HOST, free_port())
        self.api_listen = Listen(HOST, free_port())
        # Never the default: several stacks (and other test runs) share this machine.
        self.reconciler_listen = Listen(HOST, free_port())
        # `DB` in `env` puts the database elsewhere (a small filesystem, a PostgreSQL URL).
        self.db = Path(env["DB"]) if "DB" in env else workdir / "domaingate.db"
        # What DOMAINGATE_DB says: the SQLite file above, or a PostgreSQL URL.
        self.target: Path | str = self.db
        if "://" in env.get("DB", ""):
            self.target = env["DB"]
        inherited = clean_environ()
        inherited["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p
        )
        inherited["PYTHONUNBUFFERED"] = "1"
        inherited.update(
            DOMAINGATE_DB=str(self.target),
            DOMAINGATE_INTERNAL_LISTEN=str(self.internal),
            DOMAINGATE_API_LISTEN=str(self.api_listen),
            DOMAINGATE_RECONCILER_LISTEN=str(self.reconciler_listen),
            DOMAINGATE_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        inherited.update({f"DOMAINGATE_{k.upper()}": v for k, v in env.items()})
        self.env = inherited
        self.gateway = self._process("gateway", ["-m", "domaingate", "serve"])
        reconcile = ["-m", "domaingate", "reconcile"]
        if webhook_interval is not None:
            reconcile = ["-m", MODULE, str(webhook_interval)]
        self.reconciler = self._process("reconciler", reconcile)

    def _process(self, name: str, args: list[str]) -> Process:
        return Process(
            name,
            [sys.executable, *args],
            env=self.env,
            cwd=self.workdir,
            log=self.workdir / f"{name}.log",
        )

    def cli(self, *args: str) -> str:
        return run_cli(self.env, self.workdir, *args)

    def create_tenant(self, name: str) -> str:
        out = self.cli("tenant", "create", name)
        token = out.strip()
        # The token alone on stdout (one line), so scripts can capture it.
        assert token and len(out.splitlines()) == 1 and " " not in token, out
        return token

    def start_gateway(self) -> None:
        """Start the gateway and wait until both listeners serve: the internal one opens first
        (/readyz), the API's a moment later, and a test may go to either at once."""
        self.gateway.start()
        wait_until(
            lambda: self.readyz() == 200 and self._get(f"http://{self.api_listen}/") is not None,
            timeout=20,
            what="the gateway's /readyz and its API listener",
            alive=self.gateway.check_alive,
        )

    def start_reconciler(self) -> None:
        self.reconciler.start()
        wait_until(
            lambda: "reconciler started" in self.reconciler.log_text(),
            timeout=20,
            what="the reconciler to start",
            alive=self.reconciler.check_alive,
        )

    def _get(self, url: str) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def metrics(self, daemon: str) -> str:
        """The Prometheus text of the "gateway" (internal listener) or the "reconciler"."""
        listen = {"gateway": self.internal, "reconciler": self.reconciler_listen}[daemon]
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def sample(self, daemon: str, name: str, **labels: str) -> float:
        """One sample of the daemon's metrics (`name` with its `_total` suffix, if any)."""
        for family in text_string_to_metric_families(self.metrics(daemon)):
            for found in family.samples:
                if found.name == name and found.labels == labels:
                    return float(found.value)
        raise AssertionError(f"no {name}{labels} in the {daemon}'s metrics")

    def asks(self, result: str) -> int:
        """How many /tls-ask answers of `result` ("allowed", "denied") the running gateway has
        given since it started."""
        return int(self.sample("gateway", "domaingate_tls_ask_total", result=result))

    def readyz(self) -> int | None:
        """The gateway's readiness answer (None: unreachable)."""
        return self._get(f"http://{self.internal}/readyz")

    def ask(self, name: str) -> int | None:
        """The gate's answer for `name`, as Caddy would ask it (None: unreachable)."""
        return self._get(f"http://{self.internal}/tls-ask?domain={name}")

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str,
        body: Any = None,
        tenant: str | None = None,
    ) -> ApiResponse:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if tenant is not None:
            headers["X-Domaingate-Tenant"] = tenant
        request = urllib.request.Request(
            f"http://{self.api_listen}/api/v1{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
                return ApiResponse(
                    response.status, json.loads(raw) if raw else None, dict(response.headers)
                )
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return ApiResponse(
                    error.code, json.loads(raw) if raw else None, dict(error.headers)
                )

    def db_row(self, hostname: str) -> dict[str, Any] | None:
        """The domain's live row read straight from the database (for when the API is down)."""
        if isinstance(self.target, str):
            with psycopg.connect(self.target, autocommit=True, row_factory=dict_row) as pg:
                found: dict[str, Any] | None = pg.execute(
                    "SELECT * FROM domains WHERE hostname = %s AND status != 'removed'"
                    " ORDER BY id DESC LIMIT 1",
                    (hostname,),
                ).fetchone()
            return found
        with contextlib.closing(
            sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        ) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute(
                "SELECT * FROM domains WHERE hostname = ? AND status != 'removed'"
                " ORDER BY id DESC LIMIT 1",
                (hostname,),
            ).fetchone()
            return None if row is None else dict(row)

    def event_types(self, hostname: str) -> list[str]:
        """Every event of the domains named `hostname`, oldest first, read straight from the
        database."""
        if isinstance(self.target, str):
            with psycopg.connect(self.target, autocommit=True) as pg:
                found = pg.execute(
                    "SELECT e.type FROM domain_events e JOIN domains d ON d.id = e.domain_id"
                    " WHERE d.hostname = %s ORDER BY e.id",
                    (hostname,),
                ).fetchall()
            return [row[0] for row in found]
        with contextlib.closing(
            sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        ) as connection:
            rows = connection.execute(
                "SELECT e.type FROM domain_events e JOIN domains d ON d.id = e.domain_id"
                " WHERE d.hostname = ? ORDER BY e.id",
                (hostname,),
            ).fetchall()
        return [row[0] for row in rows]

    def stop(self) -> None:
        self.reconciler.stop()
        self.gateway.stop()


class Daemons:
    """Builds `Domaingate`s under one directory and stops every process they started."""

    def __init__(self, root: Path, cluster: Cluster | None = None) -> None:
        self.root = root
        # PostgreSQL: each Domaingate gets a fresh database of this cluster.
        self.cluster = cluster
        self._started: list[Domaingate] = []

    def __call__(
        self, env: Mapping[str, str], *, webhook_interval: float | None = None
    ) -> Domaingate:
        workdir = self.root / f"domaingate-{len(self._started)}"
        if self.cluster is not None and "DB" not in env:
            env = {**env, "DB": self.cluster.database()}
        daemons = Domaingate(workdir, env, webhook_interval=webhook_interval)
        self._started.append(daemons)
        return daemons

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()


def main(argv: list[str]) -> int:
    """`domaingate reconcile` with webhook delivery polled every `argv[0]` seconds, and the
    lease's ttl `argv[1]` seconds if given.

    Otherwise the lease keeps its production ttl (30 s): a SIGKILLed reconciler cannot release
    it, and its successor takes it over at once because the holder's process is gone
    (reconciler.lease), as in production. Everything else (the command, settings, signals, jobs)
    is the real thing.
    """
    from domaingate.cli import main as cli
    from reconciler import daemon
    from reconciler.tuning import Tuning

    tuning = Tuning(webhook_interval=float(argv[0]))
    if len(argv) > 1:
        tuning = Tuning(webhook_interval=float(argv[0]), lease_ttl=float(argv[1]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(daemon, "run", functools.partial(daemon.run, tuning=tuning))
        return cli.main(["reconcile"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
