"""Connection caps: sized from RLIMIT_NOFILE with a reserve for everything else, settable, and on
the internal listener at its cap the oldest connection waiting on its client makes room for a
new one (Caddy's asks are answered however many connections sit idle), or the new one is closed
at once when every connection is being answered."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from domaingate.settings import Settings, SettingsError
from gateway.app import create_internal_listener
from gateway.caps import (
    RESERVE,
    Shedder,
    caps_for,
    connection_caps,
    descriptor_limit,
    reserve_for,
)
from gateway.gate.listener import GateListener
from gateway.gate.replies import Reply
from gateway.gate.routes import Request
from tests.conftest import Api, gate_synced, set_status
from tests.support.net import answer_head
from tests.support.wait import await_until

HOST = "127.0.0.1"
ASK = b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHost: gate\r\n\r\n"
DENY = b"GET /tls-ask?domain=evil.example HTTP/1.1\r\nHost: gate\r\n\r\n"


@pytest.mark.parametrize("nofile", [64, 256, 352, 1024, 8192, 65536, 1 << 20])
def test_default_caps_leave_the_reserve_free(nofile: int) -> None:
    caps = caps_for(nofile)
    assert caps.api >= 1 and caps.internal >= caps.api
    assert nofile - caps.api - caps.internal >= reserve_for(nofile)
    assert reserve_for(nofile) >= min(RESERVE, nofile // 2)


def test_the_systemd_units_limit_gives_both_listeners_thousands() -> None:
    caps = caps_for(65536)  # LimitNOFILE of systemd/domaingate-gateway.service
    assert (caps.api, caps.internal) == (16384, 32768)


def test_caps_given_are_kept_unless_they_eat_the_reserve() -> None:
    assert caps_for(65536, api=100, internal=5000) == dataclasses.replace(
        caps_for(65536), api=100, internal=5000
    )
    assert caps_for(65536, api=100).internal == caps_for(65536).internal
    with pytest.raises(ValueError, match="LimitNOFILE"):
        caps_for(1024, internal=1000)


def test_caps_over_the_limit_stop_the_start_naming_the_setting(settings: Settings) -> None:
    settings = dataclasses.replace(settings, internal_max_connections=descriptor_limit())
    with pytest.raises(SettingsError) as caught:
        connection_caps(settings)
    assert caught.value.key == "INTERNAL_MAX_CONNECTIONS"
    assert "DOMAINGATE_INTERNAL_MAX_CONNECTIONS" in str(caught.value)


@pytest.fixture
async def capped(api: Api) -> AsyncIterator[GateListener]:
    """The internal listener, at most 3 connections, shop.acme.com verified; /slow never answers."""
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com", app="web")
    set_status(api.db_path, "shop.acme.com", "verified")
    await gate_synced(api)
    gate = create_internal_listener(api.app)
    never: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def slow(_: Request) -> asyncio.Future[Reply]:
        return never

    gate.routes = {**gate.routes, b"/slow": slow}
    gate.shedder = Shedder(3)
    await gate.start(HOST, 0)
    try:
        yield gate
    finally:
        never.cancel()
        await gate.close()


async def test_idle_connections_at_the_cap_make_room_for_the_gates_asks(
    capped: GateListener,
) -> None:
    idle = [await asyncio.open_connection(HOST, capped.port) for _ in range(3)]
    half = await asyncio.open_connection(HOST, capped.port)
    half[1].write(b"GET /tls-ask?domain=shop.acme.com HTTP/1.1\r\nHo")  # a trickle begun
    # Asks on connections kept alive, as Caddy may: each new one pushes out the oldest waiting.
    kept = []
    for request, status in [(ASK, b"200"), (DENY, b"403"), (ASK, b"200"), (DENY, b"403")]:
        reader, writer = await asyncio.open_connection(HOST, capped.port)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 " + status + b" ")
        kept.append((reader, writer))
    for reader, _ in [*idle, half]:
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # made room
    assert capped.shedder.evicted == 5 and capped.shedder.refused == 0
    assert len(capped.connections) == 3
    for _, writer in [*idle, half, *kept]:
        writer.close()


async def test_with_every_connection_answered_a_new_one_is_closed_at_once(
    capped: GateListener,
) -> None:
    busy = [await asyncio.open_connection(HOST, capped.port) for _ in range(3)]
    for _, writer in busy:
        writer.write(b"GET /slow HTTP/1.1\r\n\r\n")
    await await_until(
        lambda: len(capped.connections) == 3 and not any(c.waiting() for c in capped.connections),
        timeout=5,
    )
    assert await answer_head(capped.port, ASK) == b""
    assert capped.shedder.refused == 1 and capped.shedder.evicted == 0
    for _, writer in busy:
        writer.close()
