"""The certificate scan against a Caddy-shaped storage tree of real certificates, then the state
moves it causes, the incremental re-scan and the removal clean-up."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from domaingate.lifecycle.certificates import plan_certs
from domaingate.models import Domain, Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import events
from domaingate.store.abc import Database
from reconciler.certificates.apply import apply_cert_changes
from reconciler.certificates.job import ScanScope
from reconciler.certificates.storage import CertScanner
from reconciler.cleanup import clean_removed
from tests.conftest import sample

from ..conftest import (
    DAY,
    FakeClock,
    Issuer,
    attach,
    holding,
    make_issuer,
    make_leaf_pem,
    store_cert,
    walk,
)

LE = "acme-v02.api.letsencrypt.org-directory"
ZEROSSL = "acme.zerossl.com-v2-dv90"
LOCAL = "local"
PEBBLE = "127.0.0.1-14000-dir"


@pytest.fixture
def issuers() -> dict[str, Issuer]:
    return {
        LE: make_issuer("R11", "Let's Encrypt"),
        ZEROSSL: make_issuer(None, "ZeroSSL"),
        LOCAL: make_issuer("Caddy Local Authority - ECC Intermediate"),
        PEBBLE: make_issuer(None),  # neither CN nor O: the issuer key names it
    }


async def test_scan_moves_states_and_records_certificates(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    storage: Path,
    clock: FakeClock,
    issuers: dict[str, Issuer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = clock()
    d = {
        name: await attach(db, tenant, f"{name}.acme.test", clock, status=status)
        for name, status in [
            ("fresh", Status.VERIFIED),
            ("two", Status.VERIFIED),
            ("soon", Status.ACTIVE),
            ("ended", Status.ACTIVE),
            ("corrupt", Status.VERIFIED),
            ("truncated", Status.ACTIVE),
            ("renewed", Status.EXPIRING),
            ("wrongsan", Status.ACTIVE),
            ("pebble", Status.VERIFIED),
            ("waiting", Status.PENDING),
        ]
    }

    def put(
        key: str, label: str, ends_in_days: float, *, san: str = "", began: float = 30
    ) -> bytes:
        name = f"{label}.acme.test"
        pem = make_leaf_pem(
            issuers[key], [san or name], now - began * DAY, now + ends_in_days * DAY
        )
        store_cert(storage, key, name, pem)
        return pem

    put(LE, "fresh", 60)
    # Two issuers hold a certificate for one name: the one that ends last counts.
    put(LE, "two", 30)
    put(ZEROSSL, "two", 80)
    put(LOCAL, "soon", 5)
    put(PEBBLE, "ended", -1)
    # Corrupt: the PEM armour is intact but the DER inside is garbage.
    lines = put(LE, "corrupt", 60).split(b"\n")
    lines[3] = b"A" * len(lines[3])
    store_cert(storage, LE, "corrupt.acme.test", b"\n".join(lines))
    # Truncated mid-write: the leaf's end marker is missing.
    truncated = put(LE, "truncated", 60)
    store_cert(storage, LE, "truncated.acme.test", truncated[: len(truncated) // 4])
    put(LE, "renewed", 89, began=1)
    put(LE, "wrongsan", 60, san="other.acme.test")
    put(PEBBLE, "pebble", 60)
    put(LE, "waiting", 60)
    # A wildcard certificate the operator configured: never a tenant's, never parsed.
    put(LE, "wildcard_", 60, san="*.acme.test")

    reconciler = await holding(settings, db, clock=clock)
    with caplog.at_level(logging.WARNING, logger="reconciler.certificates.storage"):
        await reconciler.scan_certs()
    assert reconciler.certs.scanner.parsed == 11

    expected = {
        "fresh": (Status.ACTIVE, now + 60 * DAY, "R11"),
        "two": (Status.ACTIVE, now + 80 * DAY, "ZeroSSL"),
        "soon": (Status.EXPIRING, now + 5 * DAY, "Caddy Local Authority - ECC Intermediate"),
        "ended": (Status.EXPIRING, now - DAY, PEBBLE),
        "corrupt": (Status.VERIFIED, None, None),
        # Caught half-written (Caddy rewrites in place): unknown this scan, so left as it was.
        "truncated": (Status.ACTIVE, None, None),
        "renewed": (Status.ACTIVE, now + 89 * DAY, "R11"),
        "wrongsan": (Status.VERIFIED, None, None),
        "pebble": (Status.ACTIVE, now + 60 * DAY, PEBBLE),
        "waiting": (Status.PENDING, now + 60 * DAY, "R11"),
    }
    for name, (status, expires_at, issuer) in expected.items():
        got = await domain_store.get_by_id(db, d[name].id)
        assert (got.status, got.cert_expires_at, got.cert_issuer) == (
            status,
            pytest.approx(expires_at) if expires_at else None,
            issuer,
        ), name

    # Broken files are reported, once each.
    warned = [r.getMessage() for r in caplog.records]
    assert sum("corrupt.acme.test.crt" in m for m in warned) == 1
    assert sum("truncated.acme.test.crt" in m for m in warned) == 1
    assert sum("wrongsan.acme.test.crt" in m for m in warned) == 1

    # Every move is in the event log with its reason.
    soon_events = await events.for_domain(db, d["soon"].id)
    assert [(e.type, e.reason) for e in soon_events][-1] == (
        "domain.expiring",
        "certificate_expiring",
    )
    fresh_events = await events.for_domain(db, d["fresh"].id)
    assert [(e.type, e.reason) for e in fresh_events][-1] == ("domain.active", "certificate_found")

    # Nothing changed on disk: nothing is parsed, and nothing is written.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reconciler.certificates.storage"):
        assert await reconciler.scan_certs() == 0
    assert reconciler.certs.scanner.parsed == 11
    assert caplog.records == []


async def test_verified_with_a_cert_inside_the_window_moves_twice(
    db: Database, tenant: Tenant, settings: Settings, storage: Path, clock: FakeClock
) -> None:
    now = clock()
    domain = await attach(db, tenant, "late.acme.test", clock, status=Status.VERIFIED)
    issuer = make_issuer("R10")
    store_cert(
        storage,
        LE,
        "late.acme.test",
        # 3 days left of 33: less than a sixth, so the renewal is overdue.
        make_leaf_pem(issuer, ["late.acme.test"], now - 30 * DAY, now + 3 * DAY),
    )
    await (await holding(settings, db, clock=clock)).scan_certs()
    log = await events.for_domain(db, domain.id)
    assert [e.type for e in log][-2:] == ["domain.active", "domain.expiring"]
    assert (await domain_store.get_by_id(db, domain.id)).status is Status.EXPIRING


async def test_incremental_scan_parses_only_changed_files(storage: Path, clock: FakeClock) -> None:
    now = clock()
    issuer = make_issuer("R11")
    paths = [
        store_cert(
            storage,
            LE,
            f"n{i}.acme.test",
            make_leaf_pem(issuer, [f"n{i}.acme.test"], now - DAY, now + 50 * DAY),
        )
        for i in range(5)
    ]
    scanner = CertScanner(storage)
    first = scanner.scan()
    assert scanner.parsed == 5
    assert scanner.scan() == first
    assert scanner.parsed == 5

    # A renewal rewrites one file: only that one is parsed again, and the new expiry is seen.
    paths[2].write_bytes(make_leaf_pem(issuer, ["n2.acme.test"], now, now + 90 * DAY))
    stat = paths[2].stat()
    os.utime(paths[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    renewed = scanner.scan()
    assert scanner.parsed == 6
    assert renewed.certs["n2.acme.test"].not_after == pytest.approx(now + 90 * DAY)

    # A deleted certificate disappears from the result.
    paths[0].unlink()
    assert "n0.acme.test" not in scanner.scan().certs
    assert scanner.parsed == 6


def test_scan_of_missing_storage_is_empty(tmp_path: Path) -> None:
    assert CertScanner(tmp_path / "nothing-here").scan().certs == {}


async def test_removed_domain_certificates_are_deleted_in_every_issuer(
    db: Database, tenant: Tenant, settings: Settings, storage: Path, clock: FakeClock
) -> None:
    now = clock()
    issuer = make_issuer("R11")

    def pem(name: str) -> bytes:
        return make_leaf_pem(issuer, [name], now - DAY, now + 60 * DAY)

    gone = await attach(db, tenant, "gone.acme.test", clock, status=Status.ACTIVE)
    back = await attach(db, tenant, "back.acme.test", clock, status=Status.ACTIVE)
    kept = await attach(db, tenant, "kept.acme.test", clock, status=Status.ACTIVE)
    for key in (LE, ZEROSSL, LOCAL, PEBBLE):
        store_cert(storage, key, "gone.acme.test", pem("gone.acme.test"))
        store_cert(storage, key, "kept.acme.test", pem("kept.acme.test"))
    store_cert(storage, LE, "back.acme.test", pem("back.acme.test"))
    store_cert(storage, LE, "wildcard_.acme.test", pem("*.acme.test"))

    await domain_store.remove(db, gone, clock)
    await domain_store.remove(db, back, clock)
    # Re-attached and proven by its tenant straight away: its certificate is the holder's now.
    await attach(db, tenant, "back.acme.test", clock, status=Status.VERIFIED)

    result = await clean_removed(db, storage, clock)
    assert (result.cleaned, result.kept_live, result.deleted_dirs, result.errors) == (2, 1, 4, 0)
    certificates = storage / "certificates"
    assert not list(certificates.glob("*/gone.acme.test"))
    assert len(list(certificates.glob("*/kept.acme.test/kept.acme.test.crt"))) == 4
    assert (certificates / LE / "back.acme.test" / "back.acme.test.crt").exists()
    assert (certificates / LE / "wildcard_.acme.test").exists()
    async with db.reader.execute(
        "SELECT hostname, certs_cleaned_at FROM domains WHERE status = 'removed' ORDER BY id"
    ) as cursor:
        rows = [(r[0], r[1]) async for r in cursor]
    assert rows == [("gone.acme.test", now), ("back.acme.test", now)]

    # Done once: the next run finds nothing to do.
    again = await clean_removed(db, storage, clock)
    assert again.cleaned == 0
    assert kept.status is Status.ACTIVE


async def test_a_change_planned_for_a_domain_moved_meanwhile_is_not_applied(
    db: Database, tenant: Tenant, storage: Path, clock: FakeClock
) -> None:
    now = clock()
    domain = await attach(db, tenant, "race.acme.test", clock, status=Status.VERIFIED)
    store_cert(
        storage,
        LE,
        "race.acme.test",
        make_leaf_pem(make_issuer("R11"), ["race.acme.test"], now - DAY, now + 60 * DAY),
    )
    changes = plan_certs([domain], CertScanner(storage).scan().certs, now, 14)
    assert [m.target for m in changes[0].moves] == [Status.ACTIVE]
    await domain_store.remove(db, domain, clock)  # detached between the plan and the apply
    result = await apply_cert_changes(db, changes, clock)
    assert (result.applied, result.skipped) == (0, 1)
    row = await domain_store.get_by_id(db, domain.id)
    assert (row.status, row.cert_expires_at) == (Status.REMOVED, None)


async def test_a_scan_that_finds_most_certificates_gone_demotes_nobody(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    storage: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Twelve active domains and a storage with none of their certificates: a storage path that
    # is wrong or not mounted, far likelier than Caddy losing them all at once.
    names = [f"a{i}.acme.test" for i in range(12)]
    for name in names:
        await attach(db, tenant, name, clock, status=Status.ACTIVE)
    reconciler = await holding(settings, db, clock=clock)
    with caplog.at_level(logging.ERROR, logger="reconciler.certificates.job"):
        assert await reconciler.scan_certs() == 0
    assert "demoting none of them (is CADDY_STORAGE right, and mounted?)" in caplog.text
    assert {(await domain_store.get(db, n, None)).status for n in names} == {Status.ACTIVE}
    text = reconciler.metrics.render().decode()
    assert sample(text, "domaingate_reconciler_cert_scan_errors_total", cause="mass_loss") == 1

    # Once most certificates are there again, the few really gone are demoted as usual.
    issuer = make_issuer("R11")
    now = clock()
    for name in names[:8]:
        store_cert(storage, LE, name, make_leaf_pem(issuer, [name], now - DAY, now + 60 * DAY))
    assert await reconciler.scan_certs() == 12
    statuses = {n: (await domain_store.get(db, n, None)).status for n in names}
    assert [statuses[n] for n in names] == [Status.ACTIVE] * 8 + [Status.VERIFIED] * 4


async def test_certificate_changes_are_written_in_batches_each_a_compare_and_set(
    db: Database, tenant: Tenant, storage: Path, clock: FakeClock
) -> None:
    now = clock()
    issuer = make_issuer("R11")
    domains = [
        await attach(db, tenant, f"b{i}.acme.test", clock, status=Status.VERIFIED) for i in range(5)
    ]
    for domain in domains:
        name = domain.hostname
        store_cert(storage, LE, name, make_leaf_pem(issuer, [name], now - DAY, now + 5 * DAY))
    changes = plan_certs(domains, CertScanner(storage).scan().certs, now, 14)
    # Each moves twice in one change: verified → active → expiring.
    assert [len(c.moves) for c in changes] == [2] * 5
    await domain_store.remove(db, domains[2], clock)  # detached between the plan and the apply
    result = await apply_cert_changes(db, changes, clock, batch=2)
    assert (result.applied, result.moves, result.skipped) == (4, 8, 1)
    for domain in domains:
        row = await domain_store.get_by_id(db, domain.id)
        log = [(e.from_status, e.to_status) for e in await events.for_domain(db, domain.id)]
        if domain is domains[2]:
            assert (row.status, row.cert_expires_at) == (Status.REMOVED, None)
            continue
        assert (row.status, row.cert_issuer) == (Status.EXPIRING, "R11")
        assert log[-2:] == [
            (Status.VERIFIED, Status.ACTIVE),
            (Status.ACTIVE, Status.EXPIRING),
        ]


async def test_between_full_plans_a_scan_plans_only_what_changed(
    db: Database, tenant: Tenant, settings: Settings, storage: Path, clock: FakeClock
) -> None:
    issuer = make_issuer("R11")

    def put(name: str, days: float) -> None:
        store_cert(
            storage, LE, name, make_leaf_pem(issuer, [name], clock() - DAY, clock() + days * DAY)
        )

    quiet = [
        await attach(db, tenant, f"q{i}.acme.test", clock, status=Status.VERIFIED) for i in range(6)
    ]
    for domain in quiet:
        put(domain.hostname, 60)
    renewing = await attach(db, tenant, "renewing.acme.test", clock, status=Status.VERIFIED)
    put(renewing.hostname, 20)
    dropped = await attach(db, tenant, "dropped.acme.test", clock, status=Status.VERIFIED)
    put(dropped.hostname, 60)
    newcomer = await attach(db, tenant, "new.acme.test", clock)  # pending: DNS first
    reconciler = await holding(settings, db, clock=clock)

    async def status(domain: Domain) -> Status:
        return (await domain_store.get_by_id(db, domain.id)).status

    assert await reconciler.scan_certs() == 8
    assert reconciler.certs.last_scan == ScanScope(full=True, planned=8)
    assert {await status(d) for d in [*quiet, renewing, dropped]} == {Status.ACTIVE}

    # Nothing changed since: an incremental scan, nothing to write.
    assert await reconciler.scan_certs() == 0
    assert reconciler.certs.last_scan == ScanScope(full=False, planned=0)

    # A certificate removed, one stored for a domain that DNS verifies meanwhile, and the clock
    # making one certificate's renewal overdue (3 of its 21 days left, under a sixth; the
    # 61-day ones keep 43): exactly those three are planned.
    os.remove(storage / "certificates" / LE / dropped.hostname / f"{dropped.hostname}.crt")
    put(newcomer.hostname, 60)
    await walk(db, await domain_store.get_by_id(db, newcomer.id), (Status.VERIFIED,), clock)
    clock.advance(17 * DAY)
    assert await reconciler.scan_certs() == 3
    assert reconciler.certs.last_scan == ScanScope(full=False, planned=3)
    assert await status(dropped) is Status.VERIFIED
    assert await status(newcomer) is Status.ACTIVE
    assert await status(renewing) is Status.EXPIRING
    assert {await status(d) for d in quiet} == {Status.ACTIVE}

    # The full plan comes back on time, and finds nothing the incremental ones missed.
    reconciler.certs.scope.full_every = 0.0
    assert await reconciler.scan_certs() == 0
    assert reconciler.certs.last_scan == ScanScope(full=True, planned=0)


async def test_a_scan_holding_back_a_mass_loss_is_followed_by_a_full_one(
    db: Database, tenant: Tenant, settings: Settings, storage: Path, clock: FakeClock
) -> None:
    issuer = make_issuer("R11")
    now = clock()
    names = [f"m{i}.acme.test" for i in range(12)]
    for name in names:
        await attach(db, tenant, name, clock, status=Status.VERIFIED)
        store_cert(storage, LE, name, make_leaf_pem(issuer, [name], now - DAY, now + 60 * DAY))
    reconciler = await holding(settings, db, clock=clock)
    assert await reconciler.scan_certs() == 12
    crt = storage / "certificates" / LE
    moved = storage.parent / "elsewhere"
    crt.rename(moved)  # the storage as seen through a wrong path: every certificate gone
    assert await reconciler.scan_certs() == 0
    assert reconciler.certs.last_scan == ScanScope(full=False, planned=12)
    moved.rename(crt)
    # Nothing changed since the last scan's view, but that view was held back: a full plan.
    assert await reconciler.scan_certs() == 0
    assert reconciler.certs.last_scan == ScanScope(full=True, planned=0)
