"""/healthz, /readyz and /metrics on the internal listener."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from tests.conftest import (
    Api,
    Client,
    FakeClock,
    both_backends,
    gate_client,
    gate_synced,
    make_settings,
    sample,
    set_status,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


async def test_healthz(internal: Client) -> None:
    async with internal.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz_once_the_gate_has_loaded(api: Api, internal: Client) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    await api.attach(token, "blog.acme.com")
    set_status(api.db_target, "shop.acme.com", "verified")
    await gate_synced(api)
    async with internal.get("/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["ready"] is True
    assert body["allowed_hostnames"] == 1
    assert 0 <= body["sync_age_seconds"] < 1


async def test_before_the_gate_loads_it_is_not_ready_and_denies_everything(
    aiohttp_client: AiohttpClient, api: Api
) -> None:
    """An API app that never started (no database, no watcher): the gate fails closed."""
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    set_status(api.db_target, "shop.acme.com", "verified")
    unstarted = create_app(make_settings(api.db_target), clock=FakeClock())
    gate: Client = await gate_client(aiohttp_client, unstarted)
    async with gate.get("/readyz") as response:
        assert response.status == 503
        assert (await response.json())["ready"] is False
    async with gate.get("/tls-ask", params={"domain": "shop.acme.com"}) as response:
        assert response.status == 403
    async with gate.get("/route", headers={"X-Forwarded-Host": "shop.acme.com"}) as response:
        assert response.status == 404
    async with gate.get("/metrics") as response:
        assert response.status == 200  # scrapeable even so
        assert 'domaingate_tls_ask_total{result="denied"} 1.0' in await response.text()


async def test_metrics(api: Api, internal: Client) -> None:
    token = await api.tenant("acme")
    for name in ("a.acme.com", "b.acme.com", "c.acme.com", "d.acme.com"):
        await api.attach(token, name)
    set_status(api.db_target, "a.acme.com", "verified")
    set_status(api.db_target, "b.acme.com", "active")
    set_status(api.db_target, "c.acme.com", "failed")
    await gate_synced(api)
    for name in ("a.acme.com", "b.acme.com", "b.acme.com", "c.acme.com", "x.example.org"):
        async with internal.get("/tls-ask", params={"domain": name}):
            pass
    async with internal.get("/route", headers={"X-Forwarded-Host": "a.acme.com:443"}):
        pass
    async with internal.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert sample(text, "domaingate_tls_ask_total", result="allowed") == 3
    assert sample(text, "domaingate_tls_ask_total", result="denied") == 2
    assert sample(text, "domaingate_route_total", result="allowed") == 1
    for status, count in (
        ("pending", 1),
        ("verified", 1),
        ("active", 1),
        ("expiring", 0),
        ("failed", 1),
        ("removed", 0),
    ):
        assert sample(text, "domaingate_domains", status=status) == count, status
    histogram = "domaingate_request_duration_seconds"
    assert sample(text, f"{histogram}_count", listener="internal", route="/tls-ask") == 5
    assert sample(text, f"{histogram}_count", listener="api", route="/api/v1/domains") == 4
    # Buckets of the histogram: cumulative, ending with every observation in +Inf.
    assert (
        sample(text, f"{histogram}_bucket", le="+Inf", listener="internal", route="/tls-ask") == 5
    )
    assert sample(text, f"{histogram}_bucket", le="5.0", listener="internal", route="/tls-ask") == 5
    assert sample(text, "domaingate_gate_allowed_hostnames") == 2
    # Hostnames never become label values.
    assert "a.acme.com" not in text
