"""What systemd does for a `Type=notify` unit, emulated for the end-to-end tests: it listens on a
unix datagram socket named in the unit's NOTIFY_SOCKET and counts the unit as started once READY=1
arrives there. Units ordered `After=` it (Caddy, by systemd/caddy.service.d/domaingate.conf) start
only then, so a test that starts Caddy after `NotifySocket.wait_ready` keeps that ordering.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

NOTIFY_SOCKET = "NOTIFY_SOCKET"
READY = "READY=1"


class NotifySocket:
    """A unix datagram socket at `path`, read as systemd reads a Type=notify unit's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._socket.close()
        self.path.unlink(missing_ok=True)

    def wait_ready(self, *, timeout: float, alive: Callable[[], None]) -> None:
        """Block until a datagram holds READY=1; `alive` raises if the unit's process died."""
        deadline = time.monotonic() + timeout
        self._socket.settimeout(0.1)
        while True:
            alive()
            try:
                datagram = self._socket.recv(4096).decode("utf-8")
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {READY} in {timeout:g} s: {self.received}") from None
                continue
            self.received.append(datagram)
            if READY in datagram.split("\n"):
                return
