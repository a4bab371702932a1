"""A request body that never arrives holds no API connection for long.

The API lifts a connection's deadline while the application handles its request, and the cap
never closes a connection the application is handling. A handler that then awaited the body
(`inputs.read_json_object`), which aiohttp reads without a time limit, let any tenant holding a
token send a POST head with a Content-Length and then nothing (or a byte now and then), and keep
the connection for as long as it liked; the cap's worth of them refused every other client of
the API. The body now arrives under the header timeout, the connection closable meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from domaingate.store import tenants
from gateway.api_site import CONNECTIONS, ApiSite
from gateway.app import create_app
from gateway.keys import DB
from tests.conftest import make_settings

HOST = "127.0.0.1"
HEADER_TIMEOUT = 0.5
CAP = 2


@pytest.fixture
async def site(db_path: Path) -> AsyncIterator[tuple[web.Application, ApiSite]]:
    settings = make_settings(db_path, api_header_timeout=HEADER_TIMEOUT, api_max_connections=CAP)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = ApiSite(runner, HOST, 0, app[CONNECTIONS])
    await site.start()
    try:
        yield app, site
    finally:
        await runner.cleanup()


async def test_bodies_that_never_arrive_are_cut_off_and_a_prompt_client_is_served(
    site: tuple[web.Application, ApiSite],
) -> None:
    app, api = site
    _, token = await tenants.create(app[DB], "mallory", lambda: 1.0)
    head = (
        "POST /api/v1/domains HTTP/1.1\r\nHost: api\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 60000\r\n\r\n{"
    ).encode()
    held = []
    try:
        for _ in range(CAP):
            reader, writer = await asyncio.open_connection(HOST, api.port)
            writer.write(head)  # ... and the rest of the body never comes
            held.append((reader, writer))
        # Each is cut off once the header timeout has passed since its body was awaited.
        for reader, _ in held:
            assert await asyncio.wait_for(reader.read(), timeout=5 + HEADER_TIMEOUT) == b""
        reader, writer = await asyncio.open_connection(HOST, api.port)
        held.append((reader, writer))
        writer.write(
            f"GET /api/v1/domains HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}\r\n"
            "\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(12), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200"), answer
    finally:
        for _, writer in held:
            writer.close()


async def test_a_body_that_arrives_in_time_is_read_whole(
    site: tuple[web.Application, ApiSite],
) -> None:
    app, api = site
    _, token = await tenants.create(app[DB], "acme", lambda: 1.0)
    body = b'{"domain": "shop.acme.com", "app": "nobody"}'
    reader, writer = await asyncio.open_connection(HOST, api.port)
    try:
        writer.write(
            (
                "POST /api/v1/domains HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        for start in range(0, len(body), 8):  # in pieces, well within the timeout
            writer.write(body[start : start + 8])
            await asyncio.sleep(0.02)
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    # Read whole and judged: the app is nobody's, so the attach is refused as such.
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"INVALID_APP" in answer
