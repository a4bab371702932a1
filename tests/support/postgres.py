"""A real PostgreSQL for tests: Debian's `postgresql` server, a cluster of the session's own.

`Cluster.start()` runs initdb in a temporary directory and starts the server on a free loopback
port with its socket in that directory, as an unprivileged user (the server refuses to run as
root: under root the commands run as `nobody`). `Cluster.database()` creates a fresh database
from a template that already holds the schema (so a test does not pay for the migrations), and
`drop()` removes it. Durability settings are off: the tests kill processes, never the machine.
`standby()` starts an asynchronous hot standby of a cluster and `promote()` fails over to it;
`halt()` and `resume()` stop a server at once and start it again.

Fixtures (tests/support/fixtures.py): `pg_cluster` (session) and `pg_url` (a fresh database per
test).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from domaingate.store.postgres.database import PostgresDatabase
from tests.support.net import HOST, free_port

TEMPLATE = "domaingate_template"


def postgres_bin() -> Path | None:
    """Debian's server binaries (/usr/lib/postgresql/N/bin), the newest; None if not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


class Cluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="domaingate-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody", "nogroup")
            self._as_user = ["runuser", "-u", "nobody", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, cwd=self.root, timeout=120
        )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.resume()
        # On a thread of its own: the first test to need the cluster may be inside a running
        # event loop (a module-scoped async fixture), where asyncio.run is refused.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._make_template()).result()

    def _options(self) -> str:
        return (
            f"-c listen_addresses={HOST} -p {self.port} -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    async def _make_template(self) -> None:
        await self._admin(f"CREATE DATABASE {TEMPLATE}")
        # The migrations, applied the way the product applies them.
        db = await PostgresDatabase.connect(self.url(TEMPLATE))
        await db.close()

    async def _admin(self, statement: str) -> None:
        async with await psycopg.AsyncConnection.connect(self.url(), autocommit=True) as conn:
            await conn.execute(statement.encode())

    def database(self, *, migrated: bool = True) -> str:
        """A fresh database's URL: a copy of the migrated template, or empty."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        template = TEMPLATE if migrated else "template0"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}".encode())
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())

    def standby(self) -> Cluster:
        """A hot standby of this server, started: a base backup streaming from it,
        asynchronously (nothing waits for the standby to confirm a commit), on a port of its
        own. Stop it with `stop()` as any cluster."""
        standby = Cluster(self.bindir)
        standby._run(
            str(self.bindir / "pg_basebackup"),
            "-D",
            str(standby.data),
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-X",
            "stream",
            "--write-recovery-conf",
            "--checkpoint=fast",
            "--no-sync",
        )
        standby.resume()
        return standby

    def promote(self) -> None:
        """Make this standby a primary (a failover), waiting until it accepts writes."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "promote")

    def halt(self) -> None:
        """Stop the server at once (as a crash or a cut-off would), keeping its data."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def resume(self) -> None:
        """Start the server again after `halt()`, on the same port."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            self._options(),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server if it runs (a halted one is left as it is), and remove its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
