"""The internal listener on the wire: pipelining, `Connection: close`, limits, malformed and slow
clients. Whatever arrives, /tls-ask says 200 only for an allowed name and /route only for an
allowed host; a request the listener cannot or will not read is denied and its connection ends."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from gateway.app import create_internal_listener
from gateway.gate.listener import (
    MAX_BODY,
    MAX_HEAD,
    MAX_HEADERS,
    MAX_URL,
    GateListener,
    GateProtocol,
)
from tests.conftest import Api, gate_synced, set_status
from tests.support.net import answer_head

HOST = "127.0.0.1"


@pytest.fixture
async def listener(api: Api) -> AsyncIterator[GateListener]:
    """The listener on a free port, shop.acme.com (app web) verified; short timeouts."""
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com", app="web")
    set_status(api.db_path, "shop.acme.com", "verified")
    await gate_synced(api)
    gate = create_internal_listener(api.app)
    gate.request_timeout = 0.5
    gate.idle_timeout = 0.5
    await gate.start(HOST, 0)
    try:
        yield gate
    finally:
        await gate.close()


async def exchange(gate: GateListener, *chunks: bytes, pause: float = 0.0) -> bytes:
    """Send `chunks` (pausing between them), then read until the server closes."""
    reader, writer = await asyncio.open_connection(HOST, gate.port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()


def statuses(answer: bytes) -> list[int]:
    """The status of every answer in a stream (the gate's bodies never hold a status line)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", answer)]


ASK = b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\n\r\n"
DENY = b"GET /tls-ask?domain=evil.example HTTP/1.1\r\nHost: gate\r\n\r\n"
ROUTE = b"GET /route HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Host: shop.acme.com:443\r\n\r\n"
CLOSE = b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n"


async def test_pipelined_requests_are_answered_in_order(listener: GateListener) -> None:
    answer = await exchange(listener, ASK + DENY + ROUTE + DENY + CLOSE)
    assert statuses(answer) == [200, 403, 200, 403, 200]
    assert answer.count(b"allowed\n") == 2 and answer.count(b"denied\n") == 2
    assert b"X-Domaingate-App: web\r\nX-Domaingate-Upstream: web.internal:80\r\n" in answer
    assert answer.endswith(b"Connection: close\r\n\r\nallowed\n")


async def test_pipelined_behind_a_slow_route_stay_in_order(listener: GateListener) -> None:
    metrics = b"GET /metrics HTTP/1.1\r\nHost: gate\r\n\r\n"
    answer = await exchange(listener, DENY + metrics + ASK + metrics + CLOSE)
    assert statuses(answer) == [403, 200, 200, 200, 200]
    assert answer.index(b"denied\n") < answer.index(b"domaingate_tls_ask_total")


async def test_nothing_is_answered_after_connection_close(listener: GateListener) -> None:
    answer = await exchange(listener, CLOSE + ASK + ROUTE)
    assert statuses(answer) == [200]


async def test_http_1_0_closes_unless_kept_alive(listener: GateListener) -> None:
    ask = b"GET /tls-ask?domain=shop.acme.com HTTP/1.0\r\n\r\n"
    assert statuses(await exchange(listener, ask + ask)) == [200]


async def test_head_and_other_methods(listener: GateListener) -> None:
    head = b"HEAD /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\n\r\n"
    answer = await exchange(listener, head + CLOSE)
    assert statuses(answer) == [200, 200]
    assert answer.count(b"allowed\n") == 1  # HEAD: the headers alone
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"):
        request = method + b" /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\n"
        answer = await exchange(listener, request + b"Connection: close\r\n\r\n")
        assert statuses(answer) == [405], method


MALFORMED = [
    b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\nNo colon here\r\n\r\n",
    b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\nBad\x00Name: x\r\n\r\n",
    b"GET /tls-ask?domain=shop.acme.com HTTP/9.9\r\nHost: gate\r\n\r\n",
    b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"CONNECT shop.acme.com:443 HTTP/1.1\r\nHost: shop.acme.com\r\n\r\n",
    b"GET /route HTTP/1.1\r\nX-Forwarded-Host: shop.acme.com\r\n X-Folded: yes\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"GARBAGE\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED)
async def test_malformed_requests_are_never_allowed(
    listener: GateListener, request_bytes: bytes
) -> None:
    answer = await exchange(listener, request_bytes)
    assert 200 not in statuses(answer) and b"X-Domaingate-" not in answer
    assert all(status in (400, 403, 404, 405) for status in statuses(answer)), answer[:200]


async def test_an_upgrade_is_answered_as_plain_http_then_closed(listener: GateListener) -> None:
    upgrade = b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n"
    answer = await exchange(listener, ASK.removesuffix(b"\r\n") + upgrade + ASK)
    assert statuses(answer) == [200]
    assert b"Connection: close\r\n" in answer and b"101" not in answer


async def test_a_malformed_ask_is_denied_as_an_ask(listener: GateListener) -> None:
    """Once the target is known to be the gate's, its refusal is the gate's denial."""
    bad = b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\nNo colon here\r\n\r\n"
    assert statuses(await exchange(listener, bad)) == [403]
    bad_route = b"GET /route HTTP/1.1\r\nX-Forwarded-Host: shop.acme.com\r\nNo colon\r\n\r\n"
    assert statuses(await exchange(listener, bad_route)) == [404]
    assert statuses(await exchange(listener, b"GET /elsewhere HTTP/1.1\r\nNo colon\r\n\r\n")) == [
        400
    ]


async def test_huge_requests_are_refused(listener: GateListener) -> None:
    big_header = b"X-Padding: " + b"a" * 40_000 + b"\r\n"
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    long_target = b"GET /tls-ask?domain=shop.acme.com&" + b"a" * MAX_URL + b" HTTP/1.1\r\n\r\n"
    body = b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1) + b"b" * (MAX_BODY + 1)
    head = b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\n"
    for request in (head + big_header + b"\r\n", head + many + b"\r\n", long_target, head + body):
        assert statuses(await exchange(listener, request)) == [403], request[:60]
    elsewhere = b"GET /elsewhere HTTP/1.1\r\n" + big_header + b"\r\n"
    assert statuses(await exchange(listener, elsewhere)) == [431]
    long_elsewhere = b"GET /" + b"a" * (MAX_URL + 1) + b" HTTP/1.1\r\n\r\n"
    assert statuses(await exchange(listener, long_elsewhere)) == [414]


async def test_an_endless_header_is_cut_off(
    listener: GateListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header that never ends is not buffered without bound: the server stops reading and
    closes the connection once the head passes its cap, while the client is still sending.

    Measured on the server's side, by the bytes it takes in, and with the server run between the
    client's writes: client and server share this event loop, where `drain()` does not yield
    while the transport is not paused, and the kernel's loopback buffers (autotuned, up to
    several MiB) can absorb everything the client writes whatever the server does."""
    taken: list[int] = []
    data_received = GateProtocol.data_received

    def counted(protocol: GateProtocol, data: bytes) -> None:
        taken.append(len(data))
        data_received(protocol, data)

    monkeypatch.setattr(GateProtocol, "data_received", counted)
    chunk = b"a" * 4096
    reader, writer = await asyncio.open_connection(HOST, listener.port)
    sent = 0
    try:
        writer.write(b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nX-Endless: ")
        # Bounded well below what the request timeout would let through: a listener that
        # buffered without bound would take all of it before its timeout ends the connection.
        while sent < 256 * len(chunk) and not reader.at_eof():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0.001)  # the server's turn to read
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    assert 200 not in statuses(answer)
    # The server read no more than its cap on a request head, give or take the read that
    # crossed it.
    assert sum(taken) <= MAX_HEAD + MAX_URL + 2 * len(chunk), (sum(taken), sent)
    assert sent < 256 * len(chunk)


async def test_a_slow_client_is_disconnected(listener: GateListener) -> None:
    """Slowloris: a request trickling in byte by byte is dropped after the request timeout,
    unanswered."""
    chunks = [bytes([byte]) for byte in ASK]
    started = asyncio.get_running_loop().time()
    reader, writer = await asyncio.open_connection(HOST, listener.port)
    answer = b""
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    except ConnectionError:
        pass
    finally:
        writer.close()
    elapsed = asyncio.get_running_loop().time() - started
    assert answer == b""
    assert elapsed < 0.05 * len(chunks)


async def test_an_idle_connection_is_closed(listener: GateListener) -> None:
    reader, writer = await asyncio.open_connection(HOST, listener.port)
    try:
        writer.write(ASK)
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # EOF after the idle timeout
    finally:
        writer.close()
    assert statuses(answer) == [200]


async def test_closing_the_listener_ends_open_connections(api: Api) -> None:
    gate = create_internal_listener(api.app)
    await gate.start(HOST, 0)
    reader, writer = await asyncio.open_connection(HOST, gate.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    assert statuses(await reader.readuntil(b'"ok"}')) == [200]
    await asyncio.wait_for(gate.close(), timeout=5)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()


def test_the_request_path_reads_memory_only() -> None:
    """The listener and its routes load neither the store nor DNS (nor aiohttp): no request can
    reach a database or a resolver."""
    probe = (
        "import sys, gateway.gate.listener, gateway.gate.routes;"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('domaingate.store', 'domaingate.dns', 'aiohttp', 'aiosqlite'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_connections_that_ended_any_way_leave_nothing_behind(
    listener: GateListener,
) -> None:
    """Connection objects are reused after a clean end: whatever the previous connection did
    (half a request, a malformed one, Connection: close, HTTP/1.0, an abrupt close), the next
    one starts afresh."""
    endings = [
        ASK,
        b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: ga",
        b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nNo colon\r\n\r\n",
        CLOSE,
        b"GET /tls-ask?domain=shop.acme.com HTTP/1.0\r\n\r\n",
        b"\x16\x03\x01",
        DENY,
    ]
    for ending in endings * 3:
        _, writer = await asyncio.open_connection(HOST, listener.port)
        writer.write(ending)
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()
        for request, expected in ((ASK, 200), (DENY, 403), (ROUTE, 200)):
            assert statuses(await answer_head(listener.port, request)) == [expected], ending
    assert listener.spare, "clean keep-alive connections are kept for reuse"
