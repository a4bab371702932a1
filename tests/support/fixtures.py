"""The processes as pytest fixtures, for every test directory (tests/conftest.py loads this
plugin): `knot_factory`, `blackhole`, `daemons`, and PostgreSQL's `pg_cluster` (one per session)
and `pg_url` (a fresh database per test), and `pgbouncer` (PgBouncer in transaction mode in front
of the cluster, per test). Each stops what it started at teardown,
whatever state the test left it in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from domaingate.settings import Listen
from tests.support.blackhole import Blackhole
from tests.support.domaingate import Daemons
from tests.support.knot import Knot
from tests.support.pgbouncer import PgBouncer
from tests.support.postgres import Cluster, postgres_bin


@pytest.fixture
def knot_factory() -> Iterator[Callable[[Mapping[str, str]], Knot]]:
    """`knot_factory(zones) -> Knot`: a started, independent server; all stop at teardown."""
    started: list[Knot] = []

    def start(zones: Mapping[str, str]) -> Knot:
        server = Knot(zones)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def blackhole() -> Iterator[Listen]:
    """A resolver address (127.0.0.1:port) that receives queries and never answers."""
    hole = Blackhole()
    try:
        yield hole.listen
    finally:
        hole.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """`daemons(env) -> Domaingate` (DOMAINGATE_* variables without the prefix), under tmp_path."""
    factory = Daemons(tmp_path)
    try:
        yield factory
    finally:
        factory.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's own PostgreSQL cluster, started on first use, stopped at the end."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (Debian's postgresql package; scripts/test)")
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test alone."""
    url = pg_cluster.database()
    try:
        yield url
    finally:
        pg_cluster.drop(url)


@pytest.fixture
def pgbouncer(pg_cluster: Cluster) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the session's cluster."""
    bouncer = PgBouncer(pg_cluster)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
