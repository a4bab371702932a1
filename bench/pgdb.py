"""The benchmark database on PostgreSQL: the same rows as `bench.gatedb`, loaded with COPY.

A throwaway cluster of Debian's PostgreSQL (`tests.support.postgres.Cluster`, as the tests start
it: fsync off), one database per build copied from the template the project's own migrations
made. Rows go in by COPY in one transaction with the table's triggers off: the `seq` trigger would
take a sequence value and the transaction id per row, and the notify trigger wake nobody. The
rows carry what the triggers would have written instead (`seq` = the row id, `change_xid` = the
loading transaction), and the sequence is moved past them; then VACUUM ANALYZE, as autovacuum
would leave a table that has been in use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg

from bench.gatedb import dns_hostname, hostname, status_of
from tests.support.postgres import Cluster, postgres_bin


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A started throwaway cluster, stopped and removed on leaving."""
    bindir = postgres_bin()
    if bindir is None:
        raise SystemExit("no PostgreSQL server installed (Debian's postgresql package)")
    server = Cluster(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def build(url: str, count: int, dns_due: int) -> float:
    """Fill the migrated, empty database at `url`; returns the seconds it took."""
    started = time.monotonic()
    now = time.time()
    far = now + 10 * 86400
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE domains DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE apps DISABLE TRIGGER USER")
        conn.execute(
            "INSERT INTO tenants (id, name, token_hash, created_at) VALUES (1, 'bench', %s, 0)",
            (b"\x00" * 32,),
        )
        # The tenant's app: the gate routes only domains whose app is their tenant's.
        conn.execute(
            "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
            " VALUES ('web', 1, NULL, 0, 0)"
        )
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        xid = row[0] if row is not None else None
        columns = (
            "id, hostname, tenant_id, app, status, kind, method, txt_token, created_at,"
            " updated_at, next_check_at, seq, change_xid"
        )
        with conn.cursor().copy(f"COPY domains ({columns}) FROM STDIN") as copy:
            for i in range(1, count + 1):
                if i <= dns_due:
                    name, status, due = dns_hostname(i), "pending", 0.0
                else:
                    name, status, due = hostname(i), status_of(i), far + i
                copy.write_row(
                    (i, name, 1, "web", status, "subdomain", "cname", f"dg_{i}", now, now, due,
                     i, xid)
                )  # fmt: skip
        conn.execute("ALTER TABLE domains ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE apps ENABLE TRIGGER USER")
        # What 007's triggers would have counted, row by row.
        conn.execute(
            "INSERT INTO domain_counts (status, slot, n)"
            " SELECT status, id % 16, count(*) FROM domains GROUP BY status, id % 16"
        )
        # What the identity columns and the change sequence would have reached row by row.
        conn.execute("SELECT setval('domains_change_seq', %s)", (count,))
        conn.execute("SELECT setval(pg_get_serial_sequence('domains', 'id'), %s)", (count,))
        conn.execute("SELECT setval(pg_get_serial_sequence('tenants', 'id'), 1)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started
