"""Waiting for a condition: the one polling loop of the test suite.

`wait_until` blocks (harness code, synchronous tests); `await_until` is the same loop for a test
running in an event loop, where blocking would stall the servers under test. Both call `probe`
until it returns something other than None or False and hand that back; past `timeout` seconds
they raise TimeoutError naming `what`. The probe always gets one more try after the deadline,
so a slow machine costs time, never a wrong verdict on a condition that has come true. `alive`,
when given, runs before each try and raises when a process the wait depends on has died.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


def _met(result: object) -> bool:
    return result is not None and result is not False


def _timed_out(timeout: float, what: str) -> TimeoutError:
    return TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str = "the condition",
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call `probe` every `interval` seconds until it returns a value; that value."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = probe()
        if _met(result):
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        time.sleep(interval)


@overload
async def await_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str = ...,
    interval: float = ...,
    alive: Callable[[], None] | None = ...,
) -> T: ...


@overload
async def await_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str = ...,
    interval: float = ...,
    alive: Callable[[], None] | None = ...,
) -> T: ...


async def await_until(
    probe: Callable[[], object],
    *,
    timeout: float,
    what: str = "the condition",
    interval: float = 0.02,
    alive: Callable[[], None] | None = None,
) -> object:
    """`wait_until` inside an event loop: `probe` may be a coroutine function or a plain one."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if _met(result):
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        await asyncio.sleep(interval)
