"""A resolver that fails: a UDP socket on 127.0.0.1 that reads every query and never answers, or
answers each with the same junk bytes."""

from __future__ import annotations

import socket
import threading

from domaingate.settings import Listen
from tests.support.net import HOST


class Blackhole:
    """A UDP socket on 127.0.0.1 that reads every datagram and never answers: a silent resolver.

    With `reply`, it sends those bytes back to every query instead: a resolver that talks garbage.
    """

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((HOST, 0))
        self._socket.settimeout(0.05)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="dns-blackhole", daemon=True)
        self._thread.start()

    @property
    def listen(self) -> Listen:
        return Listen(HOST, self._socket.getsockname()[1])

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                _, peer = self._socket.recvfrom(65535)
                if self.reply is not None:
                    self._socket.sendto(self.reply, peer)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
