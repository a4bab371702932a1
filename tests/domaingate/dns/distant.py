"""A resolver far away: answers as a given server does, a fixed delay later (`Distant`).

Loopback answers in a fraction of a millisecond, so a query's socket is closed again before the
next check starts; across the internet each one stays open for the round trip. `Distant` gives
knot that round trip: it forwards every UDP query to the server behind it after `delay` seconds
and relays the answer back, so that queries overlap as they do in production. Its own event loop
runs in a thread of the test process; query ids are rewritten on the way, so that queries from
many clients never mix up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Self

from domaingate.settings import Listen

HOST = "127.0.0.1"
# Bursts of a thousand queries at once must not overflow a socket's queue. Linux lets root go past
# net.core.rmem_max with SO_RCVBUFFORCE / SO_SNDBUFFORCE, which the socket module does not name.
BUFFER = 8 << 20
_FORCE = {socket.SO_RCVBUF: 33, socket.SO_SNDBUF: 32}


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._on_datagram(data, addr)


class Distant:
    """`Distant(server, delay)` as a context manager; `listen` is the address to resolve with."""

    def __init__(self, server: Listen, delay: float) -> None:
        self.server = server
        self.delay = delay
        self.forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="distant-dns", daemon=True
        )
        self._front: asyncio.DatagramTransport | None = None
        self._back: asyncio.DatagramTransport | None = None
        self._next_id = 0
        self._pending: dict[int, tuple[bytes, tuple[str, int]]] = {}

    @property
    def listen(self) -> Listen:
        assert self._front is not None
        host, port = self._front.get_extra_info("sockname")[:2]
        return Listen(host, port)

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            for transport in (self._front, self._back):
                if transport is not None:
                    transport.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _open(self) -> None:
        front, _ = await self._loop.create_datagram_endpoint(
            lambda: _Side(self._from_client), local_addr=(HOST, 0)
        )
        back, _ = await self._loop.create_datagram_endpoint(
            lambda: _Side(self._from_server), remote_addr=(self.server.host, self.server.port)
        )
        self._front, self._back = front, back
        for transport in (front, back):
            sock = transport.get_extra_info("socket")
            for option, forced in _FORCE.items():
                try:
                    sock.setsockopt(socket.SOL_SOCKET, forced, BUFFER)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, option, BUFFER)

    def _from_client(self, data: bytes, client: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        self._loop.call_later(self.delay, self._forward, data, client)

    def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        assert self._back is not None
        ours = self._next_id
        self._next_id = (self._next_id + 1) % 65536
        self._pending[ours] = (data[:2], client)
        self.forwarded += 1
        self._back.sendto(ours.to_bytes(2, "big") + data[2:])

    def _from_server(self, data: bytes, _server: tuple[str, int]) -> None:
        assert self._front is not None
        found = self._pending.pop(int.from_bytes(data[:2], "big"), None)
        if found is not None:
            original, client = found
            self._front.sendto(original + data[2:], client)
