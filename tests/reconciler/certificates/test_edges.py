"""Several edges, each reconciler reporting its own Caddy storage to one database (both
backends): a certificate on one edge only makes a domain active and the operator sees where it
is, the lease moving changes nothing, removal cleans every storage before the domain counts as
cleaned, an edge gone quiet stops counting through the mass-loss guard, and a storage shared by
two edges is read and cleaned once."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from domaingate.models import Domain, Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import events, outbox
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from reconciler import cleanup
from reconciler.certificates.report import IDENTITY_FILE
from reconciler.daemon import Reconciler
from tests.conftest import ADMIN_TOKEN, ApiFactory, sample

from ..conftest import DAY, FakeClock, attach, make_issuer, make_leaf_pem, store_cert, walk

LE = "acme-v02.api.letsencrypt.org-directory"
ISSUER = make_issuer("R11", "Let's Encrypt")

# `make(name, storage)`: a reconciler of edge `name` over `storage` (the `edges` fixture).
Edges = Callable[[str, Path], Awaitable[Reconciler]]


def put(storage: Path, name: str, now: float) -> None:
    store_cert(storage, LE, name, make_leaf_pem(ISSUER, [name], now - DAY, now + 60 * DAY))


def held(storage: Path, name: str) -> bool:
    return (storage / "certificates" / LE / name).exists()


@pytest.fixture
async def edges(settings: Settings, clock: FakeClock) -> AsyncIterator[Edges]:
    """`make(name, storage)`: a reconciler of edge `name` over `storage`, on its own connections
    to the test's database; the first made takes the reconciler lease."""
    async with AsyncExitStack() as stack:

        async def make(name: str, storage: Path) -> Reconciler:
            storage.mkdir(parents=True, exist_ok=True)
            db = await open_database(settings.db)
            stack.push_async_callback(db.close)
            own = dataclasses.replace(settings, caddy_storage=storage, edge_name=name)
            reconciler = Reconciler(own, db, clock=clock, holder=name)
            stack.push_async_callback(reconciler.close)
            await reconciler.renew_leases()
            return reconciler

        yield make


async def cleaned_at(db: Database, domain: Domain) -> float | None:
    async with db.reader.execute(
        "SELECT certs_cleaned_at FROM domains WHERE id = ?", (domain.id,)
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def status(db: Database, domain: Domain) -> Status:
    return (await domain_store.get_by_id(db, domain.id)).status


async def test_a_certificate_on_one_edge_only_is_active_and_the_operator_sees_where(
    db: Database,
    settings: Settings,
    clock: FakeClock,
    tmp_path: Path,
    edges: Edges,
    api_factory: ApiFactory,
) -> None:
    api = await api_factory()
    token = await api.tenant("shopco")
    await api.attach(token, "one.shop.test")
    domain = await walk(
        db, await domain_store.get(db, "one.shop.test", None), (Status.VERIFIED,), clock
    )
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    assert a.lease.held() and not b.lease.held()
    put(b.edge.storage, "one.shop.test", clock())  # obtained through edge B's Caddy only

    await b.edge_duties()  # the standby reports its own storage
    assert await a.scan_certs() == 1
    assert await status(db, domain) is Status.ACTIVE

    shown = await api.call("GET", "/api/v1/domains/one.shop.test", token=ADMIN_TOKEN)
    assert (shown.status, shown.body["cert_edges"]) == (200, ["edge-b"])
    listed = await api.call("GET", "/api/v1/domains", token=ADMIN_TOKEN)
    assert [d["cert_edges"] for d in listed.body["domains"]] == [["edge-b"]]
    # The tenant's own view is as before: it names no edge.
    for path in ("/api/v1/domains/one.shop.test", "/api/v1/domains"):
        reply = await api.call("GET", path, token=token)
        assert reply.status == 200 and "cert_edges" not in str(reply.body)

    # The lease moves to edge B: B plans from the same reports, so nothing flips, no webhook.
    sent = (len(await events.for_domain(db, domain.id)), await outbox.backlog(db))
    await a.lease.release()
    assert await b.lease.renew()
    await a.edge_duties()  # now A is the standby reporting its own (empty) storage
    assert await b.scan_certs() == 0
    assert await a.scan_certs() == 0  # skipped in the daemon; planning anyway changes nothing
    assert await status(db, domain) is Status.ACTIVE
    assert (len(await events.for_domain(db, domain.id)), await outbox.backlog(db)) == sent


async def test_removal_deletes_from_every_storage_before_it_counts_as_cleaned(
    db: Database,
    tenant: Tenant,
    clock: FakeClock,
    tmp_path: Path,
    edges: Edges,
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    domain = await attach(db, tenant, "gone.acme.test", clock, status=Status.VERIFIED)
    for edge in (a, b):
        put(edge.edge.storage, "gone.acme.test", clock())
    await b.edge_duties()
    await a.scan_certs()
    assert await status(db, domain) is Status.ACTIVE

    await domain_store.remove(db, await domain_store.get_by_id(db, domain.id), clock)
    await a.clean_up()  # the holder deletes its own copy, and waits for edge B's
    assert not held(a.edge.storage, "gone.acme.test")
    assert held(b.edge.storage, "gone.acme.test")
    assert await cleaned_at(db, domain) is None

    await b.edge_duties()  # edge B deletes its copy and says so
    assert not held(b.edge.storage, "gone.acme.test")
    await a.clean_up()
    assert await cleaned_at(db, domain) == clock()


async def test_an_edge_gone_quiet_stops_counting_through_the_mass_loss_guard(
    db: Database,
    tenant: Tenant,
    clock: FakeClock,
    tmp_path: Path,
    edges: Edges,
) -> None:
    a = await edges("edge-a", tmp_path / "a")
    b = await edges("edge-b", tmp_path / "b")
    only_b = [f"b{i}.acme.test" for i in range(12)]
    for name in [*only_b, "both.acme.test"]:
        await attach(db, tenant, name, clock, status=Status.VERIFIED)
        put(b.edge.storage, name, clock())
    put(a.edge.storage, "both.acme.test", clock())
    await b.edge_duties()
    assert await a.scan_certs() == 13

    # Edge B stops reporting. Within EDGE_STALE_AFTER its report still counts.
    clock.advance(a.settings.edge_stale_after / 2)
    await a.renew_leases()
    assert await a.scan_certs() == 0
    # Past it, its certificates no longer hold the domains active; losing most of them at once
    # is held back by the guard rather than demoting them all.
    clock.advance(a.settings.edge_stale_after)
    await a.renew_leases()
    assert await a.scan_certs() == 0
    statuses = {name: await status(db, await domain_store.get(db, name, None)) for name in only_b}
    assert set(statuses.values()) == {Status.ACTIVE}
    errors = "domaingate_reconciler_cert_scan_errors_total"
    assert sample(a.metrics.render().decode(), errors, cause="mass_loss") == 1

    # Edge B reports again: all is as it was.
    await b.renew_leases()
    await b.edge_duties()
    assert await a.scan_certs() == 0


async def test_a_storage_shared_by_two_edges_is_read_and_cleaned_once(
    db: Database,
    tenant: Tenant,
    clock: FakeClock,
    tmp_path: Path,
    edges: Edges,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = tmp_path / "shared"
    a = await edges("edge-a", shared)
    b = await edges("edge-b", shared)
    names = [f"s{i}.acme.test" for i in range(3)]
    for name in names:
        await attach(db, tenant, name, clock, status=Status.VERIFIED)
        put(shared, name, clock())
    for _ in range(3):
        await b.edge_duties()
        await a.scan_certs()
    assert a.edge.identity == b.edge.identity == (shared / IDENTITY_FILE).read_text().strip()
    # One scanner for the storage: each certificate parsed once, by one of them.
    assert a.edge.scanner.parsed + b.edge.scanner.parsed == len(names)
    assert {await status(db, await domain_store.get(db, n, None)) for n in names} == {Status.ACTIVE}

    removed = await domain_store.get(db, names[0], None)
    await domain_store.remove(db, removed, clock)
    deletions: list[str] = []
    delete = cleanup.delete_cert_dirs

    def counted(storage: Path, hostname: str) -> int:
        deleted = delete(storage, hostname)
        deletions.extend([hostname] * deleted)
        return deleted

    monkeypatch.setattr(cleanup, "delete_cert_dirs", counted)
    for _ in range(2):
        await a.clean_up()
        await b.edge_duties()
    assert deletions == [names[0]]
    assert not held(shared, names[0])
    assert await cleaned_at(db, removed) is not None


async def rows_of(db: Database, sql: str) -> list[tuple[object, ...]]:
    async with db.reader.execute(sql) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def test_a_storage_with_no_root_yet_reports_empty_until_caddy_makes_it(
    db: Database, settings: Settings, clock: FakeClock, tenant: Tenant, tmp_path: Path
) -> None:
    """Caddy makes its storage with its first certificate: before, the edge's storage holds
    nothing (its domains' certificates are gone), and domaingate does not make the root for it.
    Once the root appears the edge reports under the storage's own identity, and its empty
    report of before is forgotten rather than left to hold removals back for a day."""
    storage = tmp_path / "edge-a" / "caddy"
    own = dataclasses.replace(settings, caddy_storage=storage, edge_name="edge-a")
    edge = Reconciler(own, db, clock=clock, holder="edge-a")
    try:
        await edge.renew_leases()
        domain = await attach(db, tenant, "gone.shop.test", clock, status=Status.ACTIVE)

        assert await edge.scan_certs() == 1
        assert await status(db, domain) is Status.VERIFIED  # no storage, no certificate
        assert not storage.exists()
        assert await rows_of(db, "SELECT id FROM cert_storages") == [("absent:edge-a",)]

        put(storage, "gone.shop.test", clock())  # Caddy's first certificate makes the root
        clock.advance(60)
        assert await edge.scan_certs() == 1
        assert await status(db, domain) is Status.ACTIVE
        identity = (storage / IDENTITY_FILE).read_text().strip()
        assert await rows_of(db, "SELECT id FROM cert_storages") == [(identity,)]
    finally:
        await edge.close()
