"""PostgreSQL failing over, and going away, under a real gateway process.

A failover to an asynchronous standby that missed the last commits: the standby is halted, 100
names are verified on the primary (the gate allows them), the primary is killed and the standby,
started on the primary's port (the same DB URL), promoted. The gate must deny every name the new
primary holds as not verified, and allow names verified there afterwards, whose change numbers
fall below its cursor, without a restart. And a gateway restarted while PostgreSQL is down
starts: it serves its snapshot's names, its API answers 503 STORE_UNAVAILABLE, and it catches up
once the server is back.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sql
from tests.support.domaingate import Domaingate
from tests.support.postgres import Cluster, postgres_bin
from tests.support.wait import wait_until

# Clusters of their own (not the session's): slow by the same rule as every PostgreSQL test.
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (?, 1, 'shop', ?, 'subdomain', 'cname', 'dg_x', 0, 0)"
)


def _set_up(url: str) -> None:
    sql(url, "INSERT INTO tenants (name, token_hash, created_at) VALUES ('acme', ?, 0)", (b"h",))
    sql(
        url,
        "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
        " VALUES ('shop', 1, NULL, 0, 0)",
    )


def _verify(url: str, names: list[str]) -> None:
    for name in names:
        sql(url, INSERT, (name, "verified"))


def _gateway(tmp_path: Path, url: str) -> Domaingate:
    return Domaingate(
        tmp_path / "dg",
        {
            "DB": url,
            "RESOLVERS": "127.0.0.1:9",
            "PLATFORM_ZONE": "apps.example.net",
            "CADDY_STORAGE": str(tmp_path / "caddy"),
        },
    )


def _readyz(dg: Domaingate) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://{dg.internal}/readyz", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def primary() -> Iterator[Cluster]:
    bindir = postgres_bin()
    assert bindir is not None, "PostgreSQL is not installed"
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_failover_to_a_standby_that_missed_commits(primary: Cluster, tmp_path: Path) -> None:
    url = primary.database()
    _set_up(url)
    _verify(url, ["kept.acme.test"])
    standby = primary.standby()
    dg = _gateway(tmp_path, url)
    try:
        # The standby has what was committed so far, then stops receiving.
        wait_until(
            lambda: (
                sql(standby.url(url.rsplit("/", 1)[1]), "SELECT count(*) FROM domains") == [(1,)]
            ),
            timeout=20,
            what="the standby to replay the first commits",
        )
        dg.start_gateway()
        standby.halt()
        lost = [f"lost{i}.acme.test" for i in range(100)]
        _verify(url, lost)
        wait_until(
            lambda: all(dg.ask(name) == 200 for name in lost),
            timeout=10,
            what="the gate to allow the names verified on the primary",
        )
        primary.halt()
        # The standby takes over the primary's address: the gateway's DB URL is unchanged.
        standby.port = primary.port
        standby.resume()
        standby.promote()
        promoted = time.monotonic()
        later = [f"later{i}.acme.test" for i in range(10)]
        _verify(url, later)

        def mended() -> bool:
            return all(dg.ask(name) == 403 for name in lost) and all(
                dg.ask(name) == 200 for name in later
            )

        wait_until(
            mended,
            timeout=5,
            what="the gate to follow the promoted server",
            alive=dg.gateway.check_alive,
        )
        took = time.monotonic() - promoted
        assert dg.ask("kept.acme.test") == 200
        status, body = _readyz(dg)
        assert (status, body["view"], body["source"]) == (200, "fresh", "database")
        assert "has diverged" in dg.gateway.log_text(), took
    finally:
        dg.stop()
        standby.stop()


def test_a_gateway_restarted_while_the_database_is_down_serves_its_snapshot(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    _set_up(pg_url)
    _verify(pg_url, ["live.acme.test", "also.acme.test"])
    dg = _gateway(tmp_path, pg_url)
    snapshot = dg.workdir / "domaingate-gate.snapshot"
    token = dg.create_tenant("globex")
    try:
        dg.start_gateway()
        wait_until(snapshot.exists, timeout=10, what="the gate's snapshot")
        dg.gateway.stop()
        pg_cluster.halt()
        try:
            dg.start_gateway()  # /readyz 200: serving the snapshot
            assert (dg.ask("live.acme.test"), dg.ask("also.acme.test")) == (200, 200)
            assert dg.ask("other.acme.test") == 403
            status, body = _readyz(dg)
            assert (status, body["view"], body["source"]) == (200, "stale", "snapshot")
            refused = dg.api("GET", "/domains", token=token)
            assert refused.status == 503
            assert refused.body["error"]["code"] == "STORE_UNAVAILABLE"
            assert dg.sample("gateway", "domaingate_gate_staleness_seconds") >= 0
            assert "serving 2 hostnames from the gate snapshot" in dg.gateway.log_text()
        finally:
            pg_cluster.resume()
        _verify(pg_url, ["new.acme.test"])
        sql(pg_url, "UPDATE domains SET status = 'failed' WHERE hostname = 'also.acme.test'")
        wait_until(
            lambda: (
                (dg.ask("new.acme.test"), dg.ask("also.acme.test")) == (200, 403)
                and dg.api("GET", "/domains", token=token).status == 200
            ),
            timeout=40,
            what="the gateway to catch up with the database",
            alive=dg.gateway.check_alive,
        )
        status, body = _readyz(dg)
        assert (status, body["view"], body["source"]) == (200, "fresh", "database")
        assert dg.sample("gateway", "domaingate_gate_staleness_seconds") < 5
    finally:
        dg.stop()
