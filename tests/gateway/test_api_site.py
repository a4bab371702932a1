"""The API's site on the wire: a request head must arrive within the header timeout (a client
sending nothing, or a byte at a time, is cut off), an idle kept-alive connection is closed, a
request the application takes long over is not, and the connection cap makes room or refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.api_site import CONNECTIONS, ApiConnections, ApiSite, middleware
from gateway.caps import Shedder
from tests.support.wait import await_until

HOST = "127.0.0.1"
HEADER_TIMEOUT = 0.5
IDLE_TIMEOUT = 0.5
GET = b"GET / HTTP/1.1\r\nHost: api\r\n\r\n"
SLOW = b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\n"


@asynccontextmanager
async def site(limit: int = 100) -> AsyncIterator[tuple[ApiSite, ApiConnections, asyncio.Event]]:
    """An application behind the API's site on a free port; /slow answers once the event is set."""
    release = asyncio.Event()

    async def fast(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    connections = ApiConnections(
        Shedder(limit), header_timeout=HEADER_TIMEOUT, idle_timeout=IDLE_TIMEOUT
    )
    app = web.Application(middlewares=[middleware])
    app[CONNECTIONS] = connections
    app.router.add_get("/", fast)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    api = ApiSite(runner, HOST, 0, connections)
    await api.start()
    try:
        yield api, connections, release
    finally:
        release.set()
        await runner.cleanup()


async def connect(api: ApiSite) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, api.port)


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection. A close that finds bytes of
    the client's still unread (a trickle cut off mid-way) reaches the client as a reset: closed
    all the same, after what was read before it."""

    async def read_all() -> bytes:
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received

    return await asyncio.wait_for(read_all(), timeout=10)


async def test_a_silent_connection_is_closed_after_the_header_timeout() -> None:
    async with site() as (api, _, _):
        reader, writer = await connect(api)
        assert await closed(reader) == b""
        writer.close()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off_after_the_header_timeout() -> None:
    head = b"GET / HTTP/1.1\r\nHost: api\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"
    async with site() as (api, _, _):
        reader, writer = await connect(api)
        sent = 0

        async def trickle() -> None:
            nonlocal sent
            for byte in head:
                writer.write(bytes([byte]))
                sent += 1
                await asyncio.sleep(0.02)  # the attack itself: 5 s for the whole head

        task = asyncio.create_task(trickle())
        try:
            assert await closed(reader) == b""  # cut off, never answered
        finally:
            task.cancel()
        assert 0 < sent < len(head)
        writer.close()


async def test_a_prompt_request_is_answered_and_an_idle_connection_then_closed() -> None:
    async with site() as (api, connections, _):
        reader, writer = await connect(api)
        writer.write(GET)
        answer = await reader.readuntil(b'{"ok": true}')
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert await closed(reader) == b""  # kept alive, then idle past IDLE_TIMEOUT
        writer.close()
        await await_until(lambda: not connections.open and not connections.by_transport, timeout=5)


async def test_a_request_the_application_takes_long_over_is_not_cut_off() -> None:
    async with site() as (api, connections, release):
        reader, writer = await connect(api)
        writer.write(SLOW)
        # Twice the header timeout with the handler still at work: the connection stays.
        await asyncio.sleep(2 * HEADER_TIMEOUT)
        assert not reader.at_eof() and len(connections.open) == 1
        release.set()
        answer = await reader.readuntil(b'{"ok": true}')
        assert answer.startswith(b"HTTP/1.1 200 ")
        writer.close()


async def test_at_the_cap_the_oldest_waiting_connection_makes_room() -> None:
    async with site(limit=3) as (api, connections, _):
        idle = [await connect(api) for _ in range(3)]
        await await_until(lambda: len(connections.open) == 3, timeout=5)
        reader, writer = await connect(api)
        writer.write(GET)
        assert (await reader.readuntil(b'{"ok": true}')).startswith(b"HTTP/1.1 200 ")
        assert await closed(idle[0][0]) == b""  # the oldest went
        assert connections.shedder.evicted == 1 and connections.shedder.refused == 0
        for _, idle_writer in idle:
            idle_writer.close()
        writer.close()


async def test_at_the_cap_with_every_connection_answered_a_new_one_is_closed_at_once() -> None:
    async with site(limit=2) as (api, connections, release):
        busy = [await connect(api) for _ in range(2)]
        for _, writer in busy:
            writer.write(SLOW)

        def all_busy() -> bool:
            return len(connections.open) == 2 and not any(c.waiting() for c in connections.open)

        await await_until(all_busy, timeout=5)
        reader, writer = await connect(api)
        writer.write(GET)
        assert await closed(reader) == b""
        assert connections.shedder.refused == 1 and connections.shedder.evicted == 0
        release.set()
        for busy_reader, _ in busy:
            assert (await busy_reader.readuntil(b'{"ok": true}')).startswith(b"HTTP/1.1 200 ")
        for _, busy_writer in busy:
            busy_writer.close()
        writer.close()
