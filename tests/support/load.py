"""A steady TLS handshake load on Caddy, every attempt recorded: what a restart under load costs.

`HandshakeLoad(port, names)` runs `workers` threads, each handshaking with Caddy (a new
connection every time, as browsers arriving do) for the names in turn, pausing `pause` seconds
between attempts, until the block ends. Each attempt is kept as an `Attempt` with its monotonic
start and end, so a test can judge the attempts that fell inside a window (the gateway down, say)
and leave out those that overlapped one it does not judge (Caddy itself stopped).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tests.support.tls import handshake


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One handshake: when it ran (time.monotonic), for which name, and what it got."""

    name: str
    started: float
    ended: float
    serial: int | None  # the served certificate's serial number; None when it failed
    error: str | None  # the failure, as `Type: message`; None when it succeeded

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start

    def within(self, start: float, end: float) -> bool:
        return start <= self.started and self.ended <= end


class HandshakeLoad:
    """Threads handshaking with 127.0.0.1:`port` for `names` in turn until the block ends."""

    def __init__(
        self, port: int, names: Iterable[str], *, workers: int = 4, pause: float = 0.01
    ) -> None:
        self.port = port
        self.names = tuple(names)
        self.workers = workers
        self.pause = pause
        self._attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"handshakes-{i}", daemon=True)
            for i in range(workers)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            name = self.names[turn % len(self.names)]
            turn += 1
            started = time.monotonic()
            serial: int | None = None
            failure: str | None = None
            try:
                serial = handshake(self.port, name, timeout=15).serial_number
            except (OSError, ssl.SSLError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            attempt = Attempt(
                name=name, started=started, ended=time.monotonic(), serial=serial, error=failure
            )
            with self._lock:
                self._attempts.append(attempt)
            self._stop.wait(self.pause)

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt so far, in the order they ended."""
        with self._lock:
            return list(self._attempts)

    def wait_for(self, count: int, *, after: float, timeout: float = 30.0) -> None:
        """Block until `count` attempts started after `after` (monotonic) have ended."""
        deadline = time.monotonic() + timeout
        while sum(1 for a in self.attempts if a.started >= after) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} handshakes in {timeout:g} s")
            time.sleep(0.02)
