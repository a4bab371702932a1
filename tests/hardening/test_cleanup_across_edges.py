"""Removal clean-up across two edges, attacked (both backends).

A tenant removes a domain whose certificate sits on two edges; the removal must take it off
both, whatever order the edges run in and even if one of them was silent (down, partitioned)
past EDGE_STALE_AFTER while the domain was marked cleaned. Caddy serves a certificate it finds in
storage after a restart without asking the gate. And a name re-claimed and proven by another
tenant meanwhile must keep its certificate on every edge: clean-up of the old claim must never
delete it from under its new holder.
"""

from __future__ import annotations

from pathlib import Path

from domaingate.lifecycle.limits import COOLDOWN_SECONDS
from domaingate.models import Tenant
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import edges as edges_store
from domaingate.store import tenants
from domaingate.store.abc import Database
from reconciler.daemon import Reconciler
from tests.reconciler.certificates.test_edges import Edges, cleaned_at, edges, held, put
from tests.reconciler.conftest import FakeClock, attach, db, db_target, tenant

__all__ = ["db", "db_target", "edges", "tenant"]  # fixtures, used by name

NAME = "gone.acme.test"


async def _active_on_both(
    db: Database, tenant: Tenant, clock: FakeClock, a: Reconciler, b: Reconciler
) -> int:
    domain = await attach(db, tenant, NAME, clock, status=Status.VERIFIED)
    for edge in (a, b):
        put(edge.edge.storage, NAME, clock())
    await b.edge_duties()
    await a.scan_certs()
    assert (await domain_store.get_by_id(db, domain.id)).status is Status.ACTIVE
    return domain.id


async def _silence(clock: FakeClock, a: Reconciler, seconds: float) -> None:
    """Edge B says nothing for `seconds`; A takes its leases again after them and reports."""
    clock.advance(seconds)
    await a.renew_leases()
    assert a.lease.held()
    await a.scan_certs()


async def test_an_edge_back_from_silence_deletes_a_certificate_removed_meanwhile(
    db: Database, tenant: Tenant, clock: FakeClock, tmp_path: Path, edges: Edges
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    domain_id = await _active_on_both(db, tenant, clock, a, b)

    # Edge B goes silent past EDGE_STALE_AFTER: it stops counting, and the removal is marked
    # cleaned once the edges still reporting (A) have deleted their copies.
    await _silence(clock, a, a.settings.edge_stale_after + 60)
    await domain_store.remove(db, await domain_store.get_by_id(db, domain_id), clock)
    await a.clean_up()
    assert await cleaned_at(db, await domain_store.get_by_id(db, domain_id)) is not None
    assert not held(a.edge.storage, NAME)
    assert held(b.edge.storage, NAME)

    # B comes back: its first duties take the removed domain's certificate off its storage.
    await b.renew_leases()
    await b.edge_duties()
    assert not held(b.edge.storage, NAME)
    # Said once: the next round has nothing left to delete, and A's state is unchanged.
    await b.edge_duties()
    await a.clean_up()
    assert not held(a.edge.storage, NAME)


async def _reclaim(db: Database, clock: FakeClock) -> int:
    """Another tenant claims the name after the cool-down and proves it."""
    clock.advance(COOLDOWN_SECONDS + 1)
    other, _token = await tenants.create(db, "rival", clock)
    claimed = await attach(db, other, NAME, clock, status=Status.VERIFIED, app="rival")
    return claimed.id


async def test_a_reclaimed_name_keeps_its_certificate_on_the_edge_yet_to_clean(
    db: Database, tenant: Tenant, clock: FakeClock, tmp_path: Path, edges: Edges
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    domain_id = await _active_on_both(db, tenant, clock, a, b)
    await domain_store.remove(db, await domain_store.get_by_id(db, domain_id), clock)
    await a.clean_up()  # A deletes its copy; B has not run yet
    assert not held(a.edge.storage, NAME) and held(b.edge.storage, NAME)

    claimed = await _reclaim(db, clock)
    await b.renew_leases()
    await a.renew_leases()
    await b.edge_duties()
    await a.clean_up()
    # B's copy now serves the new holder: kept, and the old removal no longer waits for it.
    assert held(b.edge.storage, NAME)
    assert await cleaned_at(db, await domain_store.get_by_id(db, domain_id)) is not None
    assert (await domain_store.get_by_id(db, claimed)).status is Status.VERIFIED


async def test_an_edge_back_from_silence_keeps_a_reclaimed_names_certificate(
    db: Database, tenant: Tenant, clock: FakeClock, tmp_path: Path, edges: Edges
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    domain_id = await _active_on_both(db, tenant, clock, a, b)
    await _silence(clock, a, a.settings.edge_stale_after + 60)
    await domain_store.remove(db, await domain_store.get_by_id(db, domain_id), clock)
    await a.clean_up()
    await _reclaim(db, clock)
    put(a.edge.storage, NAME, clock())  # the new holder's certificate, obtained through A

    await b.renew_leases()
    await b.edge_duties()
    assert held(b.edge.storage, NAME)  # the name is the new holder's: nothing of it is deleted
    await a.clean_up()
    assert held(a.edge.storage, NAME)


async def test_a_purged_domain_leaves_no_storage_word_for_a_reused_id(
    db: Database, tenant: Tenant, clock: FakeClock, tmp_path: Path, edges: Edges
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    domain_id = await _active_on_both(db, tenant, clock, a, b)
    await domain_store.remove(db, await domain_store.get_by_id(db, domain_id), clock)
    await a.clean_up()
    await b.edge_duties()
    await a.clean_up()
    assert await cleaned_at(db, await domain_store.get_by_id(db, domain_id)) is not None
    # Edge B's clean-up ran on a list read before the domain was marked cleaned: its word
    # lands after the lease holder forgot the domain's.
    async with db.write() as conn:
        await edges_store.drop_certificate(conn, str(b.edge.identity), NAME, domain_id, clock())
    clock.advance(a.settings.removed_retention + 1)
    await a.renew_leases()
    await a.clean_up()  # and the purge
    for table, column in (("domains", "id"), ("edge_cleanups", "domain_id")):
        found = await db.read_number(
            f"SELECT count(*) FROM {table} WHERE {column} = ?", (domain_id,)
        )
        assert (table, found) == (table, 0)
