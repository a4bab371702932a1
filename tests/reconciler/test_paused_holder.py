"""Two `domaingate reconcile` processes on one PostgreSQL database: the lease holder is frozen
(SIGSTOP) with DNS checks in flight until its lease ends and the other takes over, then thawed
(SIGCONT). Its checks finish and try to write; the database refuses every one of them.

Every row written to the database is recorded by a trigger, with the `application_name` of the
connection that wrote it (each process has its own) and a number from one sequence: a takeover
waits for the old holder's fenced transaction (and a transaction after it sees the new token),
so nothing of the old holder's can be numbered after the takeover's own row unless it was
written after the takeover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from domaingate.settings import Listen
from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.backends import open_database
from tests.conftest import EDGE_IPV4, PLATFORM_ZONE, target
from tests.support.domaingate import ROOT, clean_environ
from tests.support.net import HOST, free_port
from tests.support.process import Process
from tests.support.wait import wait_until

from .conftest import attach

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_TTL = 3.0
DOMAINS = 30

AUDIT = """
CREATE TABLE write_audit (id bigserial PRIMARY KEY, app text NOT NULL, tbl text NOT NULL);
CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO write_audit (app, tbl) VALUES (current_setting('application_name'), TG_TABLE_NAME);
    RETURN NULL;
END $$;
"""


def audit_every_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(AUDIT.encode())
        # Not the edge's own report of its storage (`domaingate.store.edges`): every reconciler
        # writes that, lease or not, about its edge alone.
        tables = pg.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT IN ('write_audit', 'schema_migrations',"
            " 'edges', 'cert_storages', 'edge_certificates', 'edge_cleanups')"
        ).fetchall()
        for (table,) in tables:
            pg.execute(
                f"CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION audit_write()".encode()
            )


def query(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as pg:
        return [tuple(row) for row in pg.execute(statement.encode()).fetchall()]


def reconciler(name: str, url: str, tmp_path: Path, resolver: Listen) -> tuple[Process, Listen]:
    listen = Listen(HOST, free_port())
    env = clean_environ()
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DOMAINGATE_DB=f"{url}?application_name={name}",
        DOMAINGATE_CADDY_STORAGE=str(tmp_path / "caddy"),
        DOMAINGATE_RESOLVERS=str(resolver),
        DOMAINGATE_DNS_TIMEOUT="2",
        DOMAINGATE_PENDING_FAST_INTERVAL="1",
        DOMAINGATE_PLATFORM_ZONE=PLATFORM_ZONE,
        DOMAINGATE_EDGE_IPV4=EDGE_IPV4,
        DOMAINGATE_RECONCILER_LISTEN=str(listen),
        DOMAINGATE_LOG_LEVEL="INFO",
    )
    argv = [sys.executable, "-m", "tests.support.domaingate", "1", str(LEASE_TTL)]
    process = Process(name, argv, env=env, cwd=tmp_path, log=tmp_path / f"{name}.log")
    return process, listen


def sample(listen: Listen, name: str) -> float:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and not found.labels:
                return float(found.value)
    raise AssertionError(f"no {name} in {listen}'s metrics")


@contextlib.contextmanager
def stopped(process: Process) -> Iterator[None]:
    """`process` frozen by SIGSTOP for the block; thawed whatever happens in it."""
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


async def test_a_holder_paused_past_its_lease_writes_nothing_after_the_takeover(
    pg_url: str, tmp_path: Path, blackhole: Listen
) -> None:
    async with await open_database(target(pg_url)) as db:
        tenant, _token = await tenants.create(db, "acme", time.time)
        for i in range(DOMAINS):
            await attach(
                db, tenant, f"d{i}.acme.test", time.time, status=Status.PENDING, first_check_in=0
            )
    audit_every_table(pg_url)
    (tmp_path / "caddy" / "certificates").mkdir(parents=True)
    old, old_listen = reconciler("old", pg_url, tmp_path, blackhole)
    new, _new_listen = reconciler("new", pg_url, tmp_path, blackhole)
    try:
        old.start()
        wait_until(
            lambda: "holding the reconciler lease" in old.log_text(),
            timeout=30,
            what="the first reconciler to hold the lease",
            alive=old.check_alive,
        )
        new.start()
        wait_until(
            lambda: "another reconciler holds the reconciler lease" in new.log_text(),
            timeout=30,
            what="the second reconciler to stand by",
            alive=new.check_alive,
        )
        # The resolver never answers: each check waits out its timeout, so some are in flight.
        wait_until(
            lambda: sample(old_listen, "domaingate_reconciler_dns_checks_in_flight") > 0,
            timeout=30,
            what="the holder's DNS checks to be under way",
        )
        with stopped(old):
            wait_until(
                lambda: "holding the reconciler lease" in new.log_text(),
                timeout=30,
                what="the second reconciler to take the lease over",
                alive=new.check_alive,
            )
            [(takeover,)] = query(
                pg_url, "SELECT min(id) FROM write_audit WHERE app = 'new' AND tbl = 'leases'"
            )
            assert takeover is not None
        # Thawed: its checks end at once (their timeouts passed) and their outcomes are refused.
        wait_until(
            lambda: sample(old_listen, "domaingate_reconciler_fenced_writes_total") >= 1,
            timeout=30,
            what="the old holder's writes to be refused",
            alive=old.check_alive,
        )
        wait_until(
            lambda: sample(old_listen, "domaingate_reconciler_dns_checks_in_flight") == 0,
            timeout=30,
            what="the old holder's checks to end",
        )
        assert sample(old_listen, "domaingate_reconciler_lease_held") == 0
        assert "standing by" in old.log_text()  # it held the lease until then
        # The new holder works: it writes check outcomes of its own.
        wait_until(
            lambda: query(
                pg_url,
                f"SELECT 1 FROM write_audit WHERE app = 'new' AND tbl = 'domains'"
                f" AND id > {takeover}",
            ),
            timeout=30,
            what="the new holder's writes",
        )
    except BaseException:
        # Shown with the failure: what each process logged.
        print(f"old:\n{old.log_tail(80)}\nnew:\n{new.log_tail(80)}")
        raise
    finally:
        for process in (old, new):
            process.stop()
    before = query(
        pg_url, f"SELECT count(*) FROM write_audit WHERE app = 'old' AND id < {takeover}"
    )
    after = query(
        pg_url,
        f"SELECT tbl, count(*) FROM write_audit WHERE app = 'old' AND id > {takeover} GROUP BY tbl",
    )
    assert before != [(0,)]  # it did write while it held the lease
    assert after == []
    assert old.returncodes == [0] and new.returncodes == [0]
    assert "Traceback" not in old.log_text(), old.log_tail()
