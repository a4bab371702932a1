"""A late write cannot undo a removal at the gate: the allowlist follows the database in order.

Two gateways ("edges") share one database, as several edges share PostgreSQL (on SQLite: two
gateway processes on one file). Edge A's verify-now commits `verified` and is held right after
its commit; meanwhile the name is taken down elsewhere: detached through edge B's API, detached by
the operator through edge A itself, or failed by another writer (the reconciler, the CLI). A's
follower applies the take-down; then A's verify-now is let go. The name must stay denied at A's
gate, at once and after A's follower has caught up with every committed change. Both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from pytest_aiohttp import AiohttpClient

from domaingate.dns.checker import DnsChecker
from domaingate.dns.findings import CheckReport
from domaingate.models import Domain
from domaingate.settings import Settings
from domaingate.store.abc import Database
from domaingate.times import Clock
from domaingate.verification import verify_now
from gateway.api import domains as domain_routes
from gateway.app import create_app
from gateway.keys import ALLOWLIST
from tests.conftest import (
    ADMIN_TOKEN,
    Api,
    Client,
    FakeClock,
    both_backends,
    gate_client,
    gate_synced,
    make_settings,
    set_status,
    tls_ask,
)
from tests.support.checkers import PassingChecker
from tests.support.wait import await_until

NAME = "shop.acme.com"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


# `db_target` before `aiohttp_client` in each test: the gateways stop before its database goes.
async def edge(aiohttp_client: AiohttpClient, db: Path | str, clock: FakeClock) -> Api:
    """One gateway on `db`, its DNS checks passing."""
    app = create_app(make_settings(db), clock=clock, checker=cast(DnsChecker, PassingChecker()))
    client: Client = await aiohttp_client(app)
    return Api(client, clock)


def hold_after_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every verify-now of the API right after its write has committed, until `release` is
    set; `committed` is set once the write is in."""
    committed, release = asyncio.Event(), asyncio.Event()

    async def held(
        db: Database, checker: DnsChecker, settings: Settings, domain: Domain, clock: Clock
    ) -> tuple[Domain, CheckReport]:
        result = await verify_now(db, checker, settings, domain, clock)
        committed.set()
        await release.wait()
        return result

    monkeypatch.setattr(domain_routes, "verify_now", held)
    return committed, release


async def detach_at_b(a: Api, b: Api, db: Path | str, token: str) -> None:
    reply = await b.call("DELETE", f"/api/v1/domains/{NAME}", token=token)
    assert reply.status == 204, reply


async def operator_detaches_at_a(a: Api, b: Api, db: Path | str, token: str) -> None:
    # Another request on the same edge: the operator's take-down through A's own API.
    reply = await a.call(
        "DELETE",
        f"/api/v1/domains/{NAME}",
        token=ADMIN_TOKEN,
        headers={"X-Domaingate-Tenant": "acme"},
    )
    assert reply.status == 204, reply


async def failed_by_another_writer(a: Api, b: Api, db: Path | str, token: str) -> None:
    set_status(db, NAME, "failed")


TakeDown = Callable[[Api, Api, Path | str, str], Awaitable[None]]
TAKE_DOWNS: dict[str, TakeDown] = {
    "detached-at-another-edge": detach_at_b,
    "detached-by-the-operator-at-this-edge": operator_detaches_at_a,
    "failed-by-another-writer": failed_by_another_writer,
}


@pytest.mark.parametrize("take_down", list(TAKE_DOWNS))
async def test_a_take_down_during_a_verify_now_holds_at_the_gate(
    db_target: Path | str,
    aiohttp_client: AiohttpClient,
    monkeypatch: pytest.MonkeyPatch,
    take_down: str,
) -> None:
    clock = FakeClock()
    a = await edge(aiohttp_client, db_target, clock)
    b = await edge(aiohttp_client, db_target, clock)
    gate_a = await gate_client(aiohttp_client, a.app)
    token = await a.tenant("acme")
    await a.attach(token, NAME)
    committed, release = hold_after_commit(monkeypatch)

    verifying: asyncio.Task[Any] = asyncio.create_task(
        a.call("POST", f"/api/v1/domains/{NAME}/verify", token=token)
    )
    await asyncio.wait_for(committed.wait(), timeout=10)
    await TAKE_DOWNS[take_down](a, b, db_target, token)
    # A's follower has applied the take-down (and everything before it) from the database.
    await gate_synced(a, timeout=5)
    assert NAME not in a.app[ALLOWLIST]

    release.set()
    reply = await asyncio.wait_for(verifying, timeout=10)
    assert reply.status == 200, reply
    assert reply.body["status"] == "verified"  # what the check did when it committed
    assert await tls_ask(gate_a, NAME) == 403
    await gate_synced(a, timeout=5)
    assert await tls_ask(gate_a, NAME) == 403


async def test_a_verify_now_holds_at_once_at_this_edge_and_soon_at_another(
    db_target: Path | str, aiohttp_client: AiohttpClient
) -> None:
    """The promise the fix keeps: a change made through an edge's API holds at its own gate when
    the API answers, with no waiting for the follower; another edge's gate follows."""
    clock = FakeClock()
    a = await edge(aiohttp_client, db_target, clock)
    b = await edge(aiohttp_client, db_target, clock)
    gate_a = await gate_client(aiohttp_client, a.app)
    gate_b = await gate_client(aiohttp_client, b.app)
    token = await a.tenant("acme")
    await a.attach(token, NAME)
    reply = await a.call("POST", f"/api/v1/domains/{NAME}/verify", token=token)
    assert reply.body["status"] == "verified", reply
    assert await tls_ask(gate_a, NAME) == 200

    async def allowed_at_b() -> bool:
        return await tls_ask(gate_b, NAME) == 200

    await await_until(allowed_at_b, timeout=5, what="edge B's gate to allow the name")
    detached = await a.call("DELETE", f"/api/v1/domains/{NAME}", token=token)
    assert detached.status == 204, detached
    assert await tls_ask(gate_a, NAME) == 403
