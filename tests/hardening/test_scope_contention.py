"""PostgreSQL's scoped write locks under contention, from a tenant's side.

Another node's writer stuck inside its transaction (frozen, or slow) holds the locks it took: a
tenant's, or a name's. Only writes that need one of those wait; the others run. A write that
waits past the lock timeout is answered 503 STORE_UNAVAILABLE with Retry-After and does not
happen, never 500. A name whose lock key another name shares (the key is a 32-bit hash) waits
too: a collision costs a wait, never a skipped lock. And a tenant's flood of writes queued on its
own lock does not take every writer place of the process: another tenant's write through the same
gateway goes through meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools

import psycopg
import pytest

from domaingate.store.postgres.database import WRITERS
from domaingate.store.scopes import Scope
from tests.conftest import Api, sql
from tests.support.wait import await_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_target(pg_url: str) -> str:
    return pg_url


def _tenant_id(api: Api, name: str) -> int:
    [(found,)] = sql(api.db_target, "SELECT id FROM tenants WHERE name = ?", (name,))
    return int(found)


async def _stuck_holding(url: str, scope: Scope) -> psycopg.AsyncConnection[object]:
    """Another node's writer, stuck in its transaction holding `scope`'s lock."""
    other = await psycopg.AsyncConnection.connect(url)
    await other.execute("SELECT pg_advisory_xact_lock(%s, %s)", scope.key)
    return other


def _colliding_names() -> tuple[str, str]:
    """Two hostnames whose lock keys are equal (a birthday search over 32-bit hashes)."""
    seen: dict[tuple[int, int], str] = {}
    for n in itertools.count():
        name = f"n{n}.example.org"
        key = Scope.hostname(name).key
        if key in seen:
            return seen[key], name
        seen[key] = name
    raise AssertionError("unreachable")


async def test_a_tenant_held_elsewhere_holds_back_its_own_writes_only(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "shop.acme.com")
    assert isinstance(api.db_target, str)
    other = await _stuck_holding(api.db_target, Scope.tenant(_tenant_id(api, "acme")))
    try:
        # Another tenant's attach does not wait for acme's lock.
        assert (await api.post_domain(globex, "shop.globex.com")).status == 201
        # acme's attach counts acme's quota: it waits, and is refused as busy.
        refused = await api.post_domain(acme, "blog.acme.com")
        assert (refused.status, refused.code) == (503, "STORE_UNAVAILABLE")
        assert refused.headers["Retry-After"] == "1"
        # A detach reads nothing of the tenant's counts: it goes through.
        gone = await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=acme)
        assert gone.status in (200, 204)
    finally:
        await other.close()
    # The refused attach did not happen, and nothing was left locked.
    listed = await api.call("GET", "/api/v1/domains", token=acme)
    assert [d["hostname"] for d in listed.body["domains"]] == []
    assert (await api.post_domain(acme, "blog.acme.com")).status == 201


async def test_a_name_whose_lock_key_another_shares_waits_and_is_503(api: Api) -> None:
    first, second = _colliding_names()
    assert first != second and Scope.hostname(first).key == Scope.hostname(second).key
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    assert (await api.post_domain(acme, first)).status == 201
    assert isinstance(api.db_target, str)
    other = await _stuck_holding(api.db_target, Scope.hostname(first))
    try:
        refused = await api.post_domain(globex, second)
        assert (refused.status, refused.code) == (503, "STORE_UNAVAILABLE")
    finally:
        await other.close()
    assert (await api.post_domain(globex, second)).status == 201


async def _waiting_on_the_server(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as probe:
        cursor = await probe.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def test_a_tenants_flood_on_its_own_lock_leaves_the_gateway_to_others(api: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "first.acme.com")
    await api.attach(globex, "first.globex.com")
    acme_app, globex_app = await api.default_app(acme), await api.default_app(globex)
    assert isinstance(api.db_target, str)
    url = api.db_target
    other = await _stuck_holding(url, Scope.tenant(_tenant_id(api, "acme")))
    try:
        flood = [
            asyncio.create_task(api.post_domain(acme, f"f{i}.acme.com", acme_app, register=False))
            for i in range(2 * WRITERS)
        ]
        await await_until(
            lambda: _waiting_on_the_server(url), timeout=5, what="acme's writes waiting"
        )
        answered = await api.post_domain(globex, "second.globex.com", globex_app, register=False)
        assert answered.status == 201
        # Answered while acme's writes were all still waiting for acme's lock.
        assert [task.done() for task in flood] == [False] * len(flood)
    finally:
        await other.close()
    replies = await asyncio.gather(*flood)
    assert {reply.status for reply in replies} <= {201, 429, 503}
    assert any(reply.status == 201 for reply in replies)
