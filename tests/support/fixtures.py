"""The processes as pytest fixtures, for every test directory (tests/conftest.py loads this
plugin): `knot_factory`, `blackhole` and `daemons`. Each stops what it started at teardown,
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
