"""A real PgBouncer in front of a test cluster: Debian's `pgbouncer`, in transaction pooling mode
(`pool_mode = transaction`), the mode that breaks what a session-minded client relies on: LISTEN
is accepted and nothing is ever delivered, prepared statements and session SETs land on whichever
server connection the next transaction gets.

`PgBouncer(cluster)` writes its ini in a temporary directory, listens on a free loopback port and
trusts every client (auth_type = trust), passing every database through to the cluster. `url()`
names a database of the cluster through it. It runs as a `Process` (as `nobody` under root:
PgBouncer refuses to run as root). Fixture: `pgbouncer` (tests/support/fixtures.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from tests.support.net import HOST, free_port
from tests.support.postgres import Cluster
from tests.support.process import Process
from tests.support.wait import wait_until

BINARY = Path("/usr/sbin/pgbouncer")


class PgBouncer:
    def __init__(self, cluster: Cluster, *, pool_size: int = 20) -> None:
        self.cluster = cluster
        self.root = Path(tempfile.mkdtemp(prefix="domaingate-pgbouncer-"))
        self.port = free_port()
        as_user: list[str] = []
        if os.geteuid() == 0:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody", "nogroup")
            as_user = ["runuser", "-u", "nobody", "--"]
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={HOST} port={cluster.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            # What psycopg and libpq send at start-up and PgBouncer would otherwise refuse.
            "ignore_startup_parameters = extra_float_digits,options\n"
            "server_reset_query =\n"
        )
        self.process = Process(
            "pgbouncer",
            [*as_user, str(BINARY), str(ini)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            cwd=self.root,
            log=self.root / "pgbouncer.log",
        )

    def url(self, direct: str) -> str:
        """`direct`, a URL of a database of the cluster, through PgBouncer instead."""
        name = urlsplit(direct).path.lstrip("/")
        return f"postgresql://postgres@{HOST}:{self.port}/{name}"

    def start(self) -> None:
        self.process.start()

        def accepting() -> bool:
            try:
                with psycopg.connect(self.url(self.cluster.url()), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

        wait_until(
            accepting, timeout=20, what="PgBouncer to accept", alive=self.process.check_alive
        )

    def stop(self) -> None:
        try:
            self.process.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.process.log_text()
