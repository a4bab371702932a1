"""Write scopes on PostgreSQL: who waits for whom.

Two edges (a `Database` each, its own pool). One edge's attach is held open inside its
transaction, after all its reads, by a hook in the attach rate check; the other edge writes
meanwhile. Whether the second write waits is read from the server (`pg_locks`: a lock not
granted) and from the order things finish, never from how long they took. A wait that should
not happen fails the test as StoreBusy, once the lock timeout has run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import psycopg
import pytest

from domaingate import hostnames
from domaingate.models import Domain, Tenant
from domaingate.states import Status
from domaingate.store import apps, limits, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Connection, Database
from domaingate.store.backends import open_database
from domaingate.store.checks import apply_checks
from domaingate.store.scopes import Kind, Scope, keys
from tests.conftest import FakeClock, make_settings, target
from tests.hardening.test_claim_race import passing_checks
from tests.support.wait import await_until

POLICY = domain_store.AttachPolicy(require_txt=False, quota=100, first_check_in=60)


@pytest.fixture
async def edges(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    async with (
        await open_database(target(pg_url)) as first,
        await open_database(target(pg_url)) as second,
    ):
        yield first, second


async def attach(db: Database, tenant: Tenant, name: str, app: str, clock: FakeClock) -> Domain:
    host = hostnames.parse(name, ("apps.example.net",))
    return await domain_store.attach(db, tenant, host, app, POLICY, clock)


class HeldOpen:
    """Holds the next attach of `tenant` inside its transaction, after every read it makes, until
    `release()`; `inside` is set once it is there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tenant: Tenant) -> None:
        self.inside = asyncio.Event()
        self._release = asyncio.Event()
        original = limits.check_attach_rate

        async def check(conn: Connection, who: Tenant, now: float, limit: int) -> None:
            await original(conn, who, now, limit)
            if who.id == tenant.id and not self.inside.is_set():
                self.inside.set()
                await self._release.wait()

        monkeypatch.setattr(limits, "check_attach_rate", check)

    def release(self) -> None:
        self._release.set()


async def waiting_on_a_lock(url: str) -> bool:
    """Whether some session of the database waits for a lock it was not granted."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        row = await cursor.fetchone()
    return row is not None and row[0] > 0


async def held_then(
    db: Database,
    held: HeldOpen,
    hold: Awaitable[Any],
    meanwhile: Callable[[], Coroutine[Any, Any, Any]],
) -> list[str]:
    """Start `hold` (the attach `held` holds open), run `meanwhile` once it is inside, then
    release it: the order in which the two finished."""
    order: list[str] = []

    async def holder() -> None:
        await hold
        order.append("held")

    task = asyncio.create_task(holder())
    await held.inside.wait()
    other = asyncio.create_task(meanwhile())
    other.add_done_callback(lambda _: order.append("meanwhile"))
    # Either it finishes while the attach is held, or it waits for a lock: then let go.
    await await_until(
        lambda: other.done() or waiting_on_a_lock(url(db)), timeout=30, what="a verdict"
    )
    held.release()
    await asyncio.gather(task, other)
    return order


def url(db: Database) -> str:
    return str(db.target.location)


async def two_tenants(db: Database, clock: FakeClock) -> tuple[Tenant, Tenant]:
    acme, _ = await tenants.create(db, "acme", clock)
    globex, _ = await tenants.create(db, "globex", clock)
    await apps.put(db, acme, "shop", None, clock)
    await apps.put(db, globex, "store", None, clock)
    return acme, globex


async def test_writes_on_other_names_and_tenants_do_not_wait(
    edges: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Acme's attach is held open, Globex attaches a name on the other edge and its
    verification is written there, both committed before Acme's attach is let go."""
    first, second = edges
    clock = FakeClock()
    acme, globex = await two_tenants(first, clock)
    theirs = await attach(second, globex, "verify.globex.com", "store", clock)
    outcomes = await passing_checks([theirs], make_settings(first.target), clock)
    held = HeldOpen(monkeypatch, acme)

    async def meanwhile() -> None:
        await attach(second, globex, "new.globex.com", "store", clock)
        assert await apply_checks(second, outcomes) == [True]

    hold = attach(first, acme, "shop.acme.com", "shop", clock)
    assert await held_then(first, held, hold, meanwhile) == ["meanwhile", "held"]
    verified = await domain_store.get_by_id(first, theirs.id)
    assert verified.status is Status.VERIFIED


async def test_writes_on_one_name_take_turns(
    edges: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Globex attaching the name Acme's held-open attach is claiming waits for it."""
    first, second = edges
    clock = FakeClock()
    acme, globex = await two_tenants(first, clock)
    held = HeldOpen(monkeypatch, acme)
    hold = attach(first, acme, "one.example.org", "shop", clock)
    order = await held_then(
        first, held, hold, lambda: attach(second, globex, "one.example.org", "store", clock)
    )
    assert order == ["held", "meanwhile"]


async def test_writes_of_one_tenant_take_turns(
    edges: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acme's second attach, of another name on another edge, waits for the first (its quota
    and rate are counted over both)."""
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    held = HeldOpen(monkeypatch, acme)
    hold = attach(first, acme, "a.acme.com", "shop", clock)
    order = await held_then(
        first, held, hold, lambda: attach(second, acme, "b.acme.com", "shop", clock)
    )
    assert order == ["held", "meanwhile"]


async def test_a_write_naming_no_scope_waits_for_every_writer(
    edges: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app's registration (no scope) waits for an attach of an unrelated tenant."""
    first, second = edges
    clock = FakeClock()
    acme, globex = await two_tenants(first, clock)
    held = HeldOpen(monkeypatch, acme)
    hold = attach(first, acme, "a.acme.com", "shop", clock)
    order = await held_then(
        first, held, hold, lambda: apps.put(second, globex, "blog", None, clock)
    )
    assert order == ["held", "meanwhile"]


async def test_scoped_writes_wait_for_a_write_naming_no_scope(
    edges: tuple[Database, Database],
) -> None:
    first, second = edges
    clock = FakeClock()
    acme, _ = await two_tenants(first, clock)
    order: list[str] = []
    async with first.write():
        task = asyncio.create_task(attach(second, acme, "a.acme.com", "shop", clock))
        task.add_done_callback(lambda _: order.append("attached"))
        await await_until(
            lambda: waiting_on_a_lock(url(first)), timeout=30, what="the attach to wait"
        )
        order.append("unscoped committed")
    await task
    assert order == ["unscoped committed", "attached"]


def test_lock_keys_are_sorted_once_each_and_kept_apart_by_kind() -> None:
    scopes = (
        Scope.tenant(7),
        Scope.hostname("b.example.org"),
        Scope.hostname("a.example.org"),
        Scope.tenant(7),
        Scope.row("leases", "7"),
    )
    taken = keys(scopes)
    assert taken == sorted(taken)
    assert len(taken) == 4
    assert [kind for kind, _ in taken] == [Kind.HOSTNAME, Kind.HOSTNAME, Kind.TENANT, Kind.ROW]
    assert all(-(2**31) <= key < 2**31 for _, key in taken)


def test_lock_keys_are_the_same_in_every_process() -> None:
    """Every edge of a fleet, whatever its version, must lock a name under the same key."""
    assert Scope.hostname("shop.acme.com").key == (1, 1301521174)
    assert Scope.tenant(7).key[0] == 2
