"""The internal listener: an `asyncio.Protocol` over httptools (llhttp) serving the gate's routes.

Caddy opens a new connection for nearly every ask, so what counts is the cost of one request on a
fresh connection: aiohttp's per-connection machinery was most of it. Here a connection is a
parser and a few attributes, and a gate answer is prebuilt bytes. The HTTP parsing is llhttp's
(through httptools); this module only frames answers and enforces limits.

Limits, each answered fail-closed (the gate's routes deny: 403 for /tls-ask, 404 for /route;
elsewhere the HTTP error) and followed by closing the connection: a request target over
`MAX_URL` bytes (414), a request head over `MAX_URL + MAX_HEAD` bytes or `MAX_HEADERS` fields
(431), a body over `MAX_BODY` (413), anything llhttp refuses (400). A new connection's first
request, and every later one from its first byte, must arrive whole within `REQUEST_TIMEOUT`; an
idle kept-alive connection lasts `IDLE_TIMEOUT`. Slow clients are disconnected (by a sweep, at
most `SWEEP_INTERVAL` late). Pipelined requests are answered in order. At most the shedder's
limit of connections are open at once (gateway.caps): at it, the oldest one not being answered
makes room, or the new one is closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import cast

import httptools

from gateway.caps import Refused, Shedder, caps_for, descriptor_limit
from gateway.gate.replies import Reply, error_reply
from gateway.gate.routes import Handler, Request

log = logging.getLogger(__name__)

MAX_URL = 8190  # aiohttp's request-line limit: a longer target was never answered
MAX_HEAD = 16384
MAX_HEADERS = 100
MAX_BODY = 65536
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
SWEEP_INTERVAL = 0.25  # how late past its deadline a connection may be closed
SPARE = 256  # reusable connection objects kept
MAX_PENDING = 32  # pipelined answers waiting on a slow one (/metrics) before reading pauses
BACKLOG = 4096

_CLOSE = b"Connection: close\r\n"
_NOT_FOUND = error_reply(404)
_NOT_ALLOWED = error_reply(405)
_UNAVAILABLE = error_reply(503)
_METHODS = (b"GET", b"HEAD")


class _Refused(Exception):
    """Raised from a parser callback to stop reading a request that breaks a limit."""


class _Clock:
    """The `Date` header line, formatted once a second rather than once a request."""

    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.line


class GateListener:
    """Serves a route table on one socket; tracks its connections to close them on stop."""

    def __init__(
        self,
        routes: dict[bytes, Handler],
        refusals: dict[bytes, Callable[[], Reply]],
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        shedder: Shedder | None = None,
    ) -> None:
        self.routes = routes
        self.refusals = refusals
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.clock = _Clock()
        # Each open connection, oldest first → the loop time by which it must have made progress.
        self.connections: OrderedDict[GateProtocol, float] = OrderedDict()
        self.shedder = shedder or Shedder(caps_for(descriptor_limit()).internal)
        # Connections that ended cleanly between requests, kept for the next ones: a new
        # llhttp parser per connection was the largest Python cost of a new-connection ask.
        self.spare: list[GateProtocol] = []
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host, port, backlog=BACKLOG, reuse_port=reuse_port
        )
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _protocol(self) -> asyncio.Protocol:
        # Counted here, not in connection_made: the loop may accept many before making any.
        if not self.shedder.admit(self.connections, GateProtocol.waiting):
            return Refused()
        spare = self.spare
        protocol = spare.pop() if spare else GateProtocol(self)
        protocol._closing = False
        assert self._loop is not None
        self.connections[protocol] = self._loop.time() + self.request_timeout
        return protocol

    def _sweep(self) -> None:
        """Close the connections past their deadline. One timer for all of them, rather than
        one per request: a timer's creation and cancellation per ask cost more than a pass
        over the few connections open at once."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c, deadline in self.connections.items() if deadline < now]:
            del self.connections[connection]  # even one whose connection was never made
            connection.close()
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, then close every connection (answers are written as they are made,
        so only a pending /metrics scrape can be cut short)."""
        if self._server is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._server.close()
        for connection in list(self.connections):
            connection.close()
        await self._server.wait_closed()
        self._server = None


class GateProtocol(asyncio.Protocol):
    """One client connection: llhttp's callbacks gather a request, the route answers it."""

    __slots__ = (
        "_body",
        "_closing",
        "_forwarded",
        "_head",
        "_headers",
        "_in_head",
        "_listener",
        "_loop",
        "_parser",
        "_pending",
        "_reading",
        "_refused",
        "_reusable",
        "_transport",
        "_url",
        "_write_paused",
    )

    def __init__(self, listener: GateListener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._forwarded: list[bytes] = []
        self._headers = 0
        self._head = 0
        self._body = 0
        self._in_head = False
        self._refused = 0
        self._closing = False
        self._reading = True
        self._write_paused = False
        # Answers queued behind a slow one, in request order: (answer, keep-alive, HEAD).
        self._pending: deque[tuple[Reply | asyncio.Future[Reply], bool, bool]] | None = None
        # Whether the parser sits between requests, ready for another connection's first.
        self._reusable = True

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        if self._closing:  # evicted (gateway.caps) between its accept and now
            transport.close()
            return
        self._reading = True
        self._write_paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        listener = self._listener
        listener.connections.pop(self, None)
        self._closing = True
        self._transport = None
        if self._pending is not None:
            for item, _, _ in self._pending:
                if isinstance(item, asyncio.Future):
                    item.cancel()
            self._pending = None
            self._reusable = False
        if self._reusable and len(listener.spare) < SPARE:
            listener.spare.append(self)

    def waiting(self) -> bool:
        """Whether it waits on its client (no answer under way): the cap may close it."""
        return self._pending is None

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        # A client that sends requests without reading the answers: stop reading until it does.
        self._write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume()

    def _pause(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._write_paused or self._pending is not None or self._closing:
            return
        if not self._reading and self._transport is not None:
            self._reading = True
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._in_head:
            self._head += len(data)
            if self._head > MAX_HEAD + MAX_URL:
                self._refuse(431)
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade or CONNECT: the gate speaks plain HTTP/1.1 alone.
            self._reusable = False
            self._refuse(400)
        except httptools.HttpParserError:
            # llhttp stays in its error state: this parser is done for good.
            self._reusable = False
            self._refuse(self._refused or 400)
        if self._pending is not None and len(self._pending) >= MAX_PENDING:
            self._pause()

    # -- llhttp's callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._forwarded = []
        self._headers = 0
        self._head = 0
        self._body = 0
        self._in_head = True
        self._refused = 0
        self._reusable = False
        # A slow client is closed by the listener's sweep once this passes: nothing was half
        # answered, so closing is the whole story.
        listener = self._listener
        listener.connections[self] = self._loop.time() + listener.request_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            self._refused = 414
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._head += len(name) + len(value)
        if self._headers > MAX_HEADERS or self._head > MAX_HEAD + MAX_URL:
            self._refused = 431
            raise _Refused
        if len(name) == 16 and name.lower() == b"x-forwarded-host":
            self._forwarded.append(value)

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > MAX_BODY:
            self._refused = 413
            raise _Refused

    def on_message_complete(self) -> None:
        if self._closing:
            return  # pipelined after a request that ended the connection
        parser = self._parser
        keep_alive = parser.should_keep_alive() and not parser.should_upgrade()
        # After a last request (Connection: close, HTTP/1.0) llhttp refuses any more data.
        self._reusable = keep_alive
        method = parser.get_method()
        path, _, query = self._url.partition(b"#")[0].partition(b"?")
        handler = self._listener.routes.get(path)
        answer: Reply | Awaitable[Reply]
        if handler is None:
            answer = _NOT_FOUND
        elif method not in _METHODS:
            answer = _NOT_ALLOWED
        else:
            answer = handler(Request(query=query, forwarded=tuple(self._forwarded)))
        head_only = method == b"HEAD"
        if isinstance(answer, Reply):
            self._answer(answer, keep_alive, head_only)
        else:
            self._defer(answer, keep_alive, head_only)
        if keep_alive and not self._closing:
            listener = self._listener
            listener.connections[self] = self._loop.time() + listener.idle_timeout

    # -- answers -------------------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """A request broke a limit or was malformed: the route's denial if its path is known
        (fail closed), else the HTTP error; then the connection ends."""
        if self._closing:
            return
        path = self._url.partition(b"#")[0].partition(b"?")[0]
        refusal = self._listener.refusals.get(path)
        self._answer(refusal() if refusal is not None else error_reply(status), False, False)

    def _answer(self, answer: Reply, keep_alive: bool, head_only: bool) -> None:
        if not keep_alive:
            self._closing = True
        if self._pending is not None:
            self._pending.append((answer, keep_alive, head_only))
            return
        self._write(answer, keep_alive, head_only)

    def _write(self, answer: Reply, keep_alive: bool, head_only: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        date = self._listener.clock.date()
        tail = b"\r\n" if keep_alive else _CLOSE + b"\r\n"
        body = b"" if head_only else answer.body
        transport.write(b"".join((answer.head, date, tail, body)))
        if not keep_alive:
            self._closing = True
            transport.close()

    def _defer(self, answer: Awaitable[Reply], keep_alive: bool, head_only: bool) -> None:
        future = asyncio.ensure_future(answer)
        if not keep_alive:
            self._closing = True
        if self._pending is None:
            self._pending = deque()
        self._pending.append((future, keep_alive, head_only))
        future.add_done_callback(self._flush)

    def _flush(self, _: object = None) -> None:
        pending = self._pending
        while pending:
            item, keep_alive, head_only = pending[0]
            if isinstance(item, asyncio.Future):
                if not item.done():
                    return
                if item.cancelled():
                    pending.popleft()
                    continue
                error = item.exception()
                if error is not None:
                    log.error("internal route failed", exc_info=error)
                item = _UNAVAILABLE if error is not None else item.result()
            pending.popleft()
            self._write(item, keep_alive, head_only)
        self._pending = None
        self._resume()
