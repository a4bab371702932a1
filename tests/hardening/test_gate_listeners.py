"""Which listener serves the gate: the internal one alone, and only on loopback unless the operator
consents (INTERNAL_ALLOW_PUBLIC); the API listener answers 404 for /tls-ask and /route."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domaingate.settings import Listen, Settings, SettingsError, load_settings
from domaingate.store import apps, tenants
from domaingate.store.backends import open_database
from gateway import server
from tests.conftest import ADMIN_TOKEN, FakeClock, bearer, make_settings, set_status, target
from tests.domaingate.cli.test_cli import run
from tests.support.net import HOST, free_port
from tests.support.wait import await_until


@pytest.fixture
async def gateway(db_path: Path) -> AsyncIterator[Settings]:
    """The real gateway (`server.run`, both listeners on free loopback ports) with
    shop.acme.com verified; yields its settings."""
    async with await open_database(target(db_path)) as db:
        acme, _ = await tenants.create(db, "acme", FakeClock())
        await apps.put(db, acme, "web", None, FakeClock())
    settings = make_settings(
        db_path, api_listen=Listen(HOST, free_port()), internal_listen=Listen(HOST, free_port())
    )
    stop = asyncio.Event()
    task = asyncio.create_task(server.run(settings, stop))
    async with aiohttp.ClientSession() as session:

        async def api_up() -> bool:
            try:
                async with session.get(f"http://{settings.api_listen}/api/v1/openapi.json"):
                    return True
            except aiohttp.ClientConnectionError:
                return False

        await await_until(api_up, timeout=10, interval=0.01)
        async with session.post(
            f"http://{settings.api_listen}/api/v1/domains",
            json={"domain": "shop.acme.com", "app": "web"},
            headers={**bearer(ADMIN_TOKEN), "X-Domaingate-Tenant": "acme"},
        ) as response:
            assert response.status == 201
    set_status(db_path, "shop.acme.com", "verified")
    try:
        yield settings
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


GATE_REQUESTS = [
    ("/tls-ask?domain=shop.acme.com", {}),
    ("/route", {"X-Forwarded-Host": "shop.acme.com:443"}),
]


async def test_only_the_internal_listener_serves_the_gate(gateway: Settings) -> None:
    async with aiohttp.ClientSession() as session:

        async def gate_allows() -> bool:
            url = f"http://{gateway.internal_listen}/tls-ask?domain=shop.acme.com"
            async with session.get(url) as response:
                return response.status == 200

        await await_until(gate_allows, timeout=2, interval=0.01)
        for path, headers in GATE_REQUESTS:
            async with session.get(f"http://{gateway.internal_listen}{path}", headers=headers) as r:
                assert r.status == 200, path
            async with session.get(f"http://{gateway.api_listen}{path}", headers=headers) as r:
                assert r.status == 404, path
                assert (await r.json())["error"]["code"] == "NOT_FOUND"
                assert "X-Domaingate-App" not in r.headers
        # Nor does the gate's listener serve the API.
        url = f"http://{gateway.internal_listen}/api/v1/domains"
        async with session.get(url, headers=bearer(ADMIN_TOKEN)) as response:
            assert response.status == 404


def test_consent_holds_however_the_settings_are_built(tmp_path: Path) -> None:
    """Not only load_settings(): a Settings built or copied in code (as bench/ builds one) must
    not carry a public internal listener to server.run() without consent."""
    base = make_settings(tmp_path / "x.db")
    public = Listen("192.0.2.1", 9123)
    with pytest.raises(SettingsError) as caught:
        dataclasses.replace(base, internal_listen=public)
    assert caught.value.key == "INTERNAL_LISTEN"
    with pytest.raises(SettingsError):
        Settings(internal_listen=Listen("0.0.0.0", 9123))
    forced = dataclasses.replace(base, internal_listen=public, internal_allow_public=True)
    assert forced.internal_listen == public


@pytest.mark.slow
def test_the_daemon_refuses_a_public_internal_listener(tmp_path: Path) -> None:
    """`domaingate serve`, the systemd unit's command, stops before binding anything."""
    api_port, internal_port = free_port(), free_port()
    done = run(
        tmp_path / "serve.db",
        "serve",
        env={
            "DOMAINGATE_API_LISTEN": f"{HOST}:{api_port}",
            "DOMAINGATE_INTERNAL_LISTEN": f"0.0.0.0:{internal_port}",
        },
    )
    assert done.code == 2
    assert "DOMAINGATE_INTERNAL_LISTEN" in done.err
    assert "DOMAINGATE_INTERNAL_ALLOW_PUBLIC" in done.err
    assert "Traceback" not in done.err
    assert not (tmp_path / "serve.db").exists()


LISTEN_HOSTS = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(network="127.0.0.0/8").map(str),
    st.sampled_from(("localhost", "LOCALHOST", "localhost.", "0", "::", "[::1]", "127.1")),
    st.sampled_from(("0x7f.0.0.1", "0177.0.0.1", "2130706433", "::ffff:127.0.0.1", "::1%lo")),
)


def bound_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Where a listener on `host` would bind: numeric hosts as the C library reads them (it
    takes 127.1 and 0x7f.0.0.1), `localhost` from the hosts file; never a DNS query."""
    flags = socket.AI_PASSIVE | (0 if host == "localhost" else socket.AI_NUMERICHOST)
    try:
        found = socket.getaddrinfo(host.strip("[]"), 9123, flags=flags, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]


@settings(max_examples=100, deadline=None, database=None)
@given(LISTEN_HOSTS)
@example("0.0.0.0")
@example("192.0.2.1")
def test_an_internal_listener_taken_without_consent_binds_loopback_only(host: str) -> None:
    listen = f"[{host}]:9123" if ":" in host and not host.startswith("[") else f"{host}:9123"
    try:
        settings = load_settings(env={"DOMAINGATE_INTERNAL_LISTEN": listen})
    except SettingsError as exc:
        assert exc.key == "INTERNAL_LISTEN"
        assert load_settings(
            env={"DOMAINGATE_INTERNAL_LISTEN": listen, "DOMAINGATE_INTERNAL_ALLOW_PUBLIC": "1"}
        )
        return
    assert settings.internal_listen.is_loopback
    assert all(address.is_loopback for address in bound_addresses(host))
