"""End-to-end tests: real Caddy, Pebble and knot on loopback (see tests/support/stack.py).

Each test module builds its own `Stack` in a module-scoped `stack` fixture (fresh state per
module). When a test fails, the tail of every process log is printed into its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.stack import Stack

_FAILED = pytest.StashKey[bool]()


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
