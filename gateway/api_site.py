"""The API's listening socket: aiohttp's server behind a connection cap and a header timeout.

aiohttp bounds neither how long a request head may take to arrive nor how many connections are
open: under `AppRunner` an idle connection lasts its keep-alive timeout of an hour, and one that
sends its head a byte at a time as long as it likes. Each is a descriptor of the process the gate
answers in. So each connection's protocol is wrapped (`ApiConnection`): every event goes on to
aiohttp's own, and the wrapper keeps a deadline the site's sweep enforces, at most
`SWEEP_INTERVAL` late:

- a new connection's first request head must have arrived `header_timeout` after the accept,
  and a later request's head `header_timeout` after its first byte;
- between requests, a kept-alive connection lasts `IDLE_TIMEOUT`;
- a request's body, once the application has authenticated it and waits for it
  (`body_middleware`), must have arrived `header_timeout` after that: a body that never comes,
  or comes a byte at a time, holds no connection for longer;
- while the application handles a request (from its head to the handler's answer, marked by
  `middleware`), but for the wait for its body, no deadline: a check that waits on DNS is not
  cut short.

The cap (gateway.caps) counts connections from their accept; the oldest one that waits on its
client makes room for a new one, or the new one is closed at once.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.caps import Refused, Shedder

IDLE_TIMEOUT = 15.0
SWEEP_INTERVAL = 0.25
BACKLOG = 1024
_BUSY = math.inf  # the deadline of a connection whose request the application is handling


class ApiConnections:
    """The API listener's open connections, oldest first, each with its deadline."""

    def __init__(
        self, shedder: Shedder, *, header_timeout: float, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.shedder = shedder
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.open: OrderedDict[ApiConnection, float] = OrderedDict()
        # The transport aiohttp sees → its wrapper, for the middleware to find.
        self.by_transport: dict[asyncio.BaseTransport, ApiConnection] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def protocol(self, server: web.Server) -> asyncio.Protocol:
        """A new connection's protocol: aiohttp's behind the wrapper, or a refusal."""
        if not self.shedder.admit(self.open, ApiConnection.waiting):
            return Refused()
        connection = ApiConnection(self, cast(asyncio.Protocol, server()))
        self.open[connection] = asyncio.get_running_loop().time() + self.header_timeout
        return connection

    def start_sweeping(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c, deadline in self.open.items() if deadline < now]:
            del self.open[connection]
            connection.close()
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)


class ApiConnection(asyncio.Protocol):
    """One API connection: aiohttp's protocol (`inner`) does the HTTP, this keeps its deadline."""

    __slots__ = ("_closing", "_connections", "_idle", "_inner", "_transport")

    def __init__(self, connections: ApiConnections, inner: asyncio.Protocol) -> None:
        self._connections = connections
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._closing = False
        self._idle = False  # between requests: the next byte starts a new head's clock

    def waiting(self) -> bool:
        """Whether it waits on its client rather than on the application: the cap may close it."""
        return self._connections.open.get(self, _BUSY) != _BUSY

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if self._closing:  # evicted between its accept and now
            transport.close()
        self._connections.by_transport[transport] = self
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        connections = self._connections
        connections.open.pop(self, None)
        if self._transport is not None:
            connections.by_transport.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            self._idle = False
            self._deadline(self._connections.header_timeout)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def handling(self) -> None:
        """A request's head has arrived and the application has it."""
        self._idle = False
        if self in self._connections.open:
            self._connections.open[self] = _BUSY

    def awaiting_body(self) -> None:
        """The application waits for the request's body: the client's turn, under a deadline."""
        self._deadline(self._connections.header_timeout)

    def answered(self) -> None:
        """The application has answered: the connection waits on its client again."""
        self._idle = True
        self._deadline(self._connections.idle_timeout)

    def _deadline(self, seconds: float) -> None:
        if self in self._connections.open:
            self._connections.open[self] = asyncio.get_running_loop().time() + seconds


CONNECTIONS = web.AppKey("api_connections", ApiConnections)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection busy while the application handles its request (outermost)."""
    connection = request.config_dict[CONNECTIONS].by_transport.get(
        cast(asyncio.BaseTransport, request.transport)
    )
    if connection is None:  # served by another site (aiohttp's test server)
        return await handler(request)
    connection.handling()
    try:
        return await handler(request)
    finally:
        connection.answered()


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads an authenticated request's body (at most the application's `client_max_size`)
    under the connection's deadline, before the handler runs (innermost)."""
    connection = request.config_dict[CONNECTIONS].by_transport.get(
        cast(asyncio.BaseTransport, request.transport)
    )
    if connection is not None and request.body_exists:
        connection.awaiting_body()
        try:
            # Kept by aiohttp: the handler's own read returns it. Too large is the error
            # middleware's to answer (413), as it was the handler's.
            await request.read()
        except ConnectionError:
            # Cut off at its deadline (or gone): no request to answer, and nothing to log.
            raise web.HTTPRequestTimeout() from None
        finally:
            connection.handling()
    return await handler(request)


class ApiSite(web.BaseSite):
    """A TCP site whose connections go through `ApiConnections` (its cap and deadlines)."""

    __slots__ = ("_connections", "_host", "_port")

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, connections: ApiConnections
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._connections = connections

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The bound port (`port` 0 asks the kernel for a free one)."""
        if self._server is None:
            raise RuntimeError("the site is not started")
        return int(cast(asyncio.Server, self._server).sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up (BaseSite checks)
        connections = self._connections
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: connections.protocol(server), self._host, self._port, backlog=self._backlog
        )
        connections.start_sweeping()

    async def stop(self) -> None:
        self._connections.stop_sweeping()
        await super().stop()
