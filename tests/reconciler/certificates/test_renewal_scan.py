"""The renewal window read from real files: 6-, 45- and 90-day certificates in a Caddy-shaped
storage, the ARI window Caddy 2.8+ keeps in `{name}.json` (moved into the past, refreshed alone,
given for another certificate), `.json` files that are corrupt, cut short or missing, Caddy's
temporary files beside them, and the EXPIRING_DAYS override; then what the domain object shows."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from domaingate.models import Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import tenants
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.migrations import migrations
from domaingate.targets import PostgresServer
from domaingate.wire import domain_json
from reconciler.certificates.job import ScanScope
from reconciler.certificates.renewal_info import ari_cert_id
from reconciler.daemon import Reconciler
from tests.conftest import sample, sql

from ..conftest import (
    DAY,
    FakeClock,
    Issuer,
    attach,
    holding,
    make_issuer,
    make_leaf_pem,
    store_cert,
)

LE = "acme-v02.api.letsencrypt.org-directory"
HOUR = 3600.0
ERRORS = "domaingate_reconciler_cert_scan_errors_total"


def go_time(timestamp: float) -> str:
    """A time as Go's encoding/json writes it (RFC 3339, nanoseconds)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}123Z"


def caddy_json(name: str, *, start: float, end: float, cert_id: str, now: float) -> bytes:
    """`{name}.json` as Caddy 2.8+ writes it for an ACME certificate with renewal information."""
    return json.dumps(
        {
            "sans": [name],
            "issuer_data": {
                "url": "https://127.0.0.1:14000/certZ/1",
                "ca": "https://127.0.0.1:14000/dir",
                "renewal_info": {
                    "suggestedWindow": {"start": go_time(start), "end": go_time(end)},
                    "_uniqueIdentifier": cert_id,
                    "_retryAfter": go_time(now + 6 * HOUR),
                    "_selectedTime": go_time((start + end) / 2),
                },
            },
        }
    ).encode()


def rewrite(path: Path, data: bytes) -> None:
    """Write `data` so the scan sees a new version even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, max(stat.st_mtime_ns, before + 1_000_000)))


class Storage:
    """Certificates of a given lifetime and age for names under one issuer, and their `.json`."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root = root
        self.clock = clock
        self.issuer: Issuer = make_issuer("R11")

    def put(self, name: str, lifetime_days: float, age: float) -> bytes:
        not_before = self.clock() - age
        pem = make_leaf_pem(self.issuer, [name], not_before, not_before + lifetime_days * DAY)
        store_cert(self.root, LE, name, pem)  # with a `.json` holding `sans` only, as 2.6 does
        return pem

    def json_path(self, name: str) -> Path:
        return self.root / "certificates" / LE / name / f"{name}.json"

    def ari(self, name: str, pem: bytes, *, start: float, end: float) -> None:
        cert_id = ari_cert_id(x509.load_pem_x509_certificate(pem))
        data = caddy_json(name, start=start, end=end, cert_id=cert_id, now=self.clock())
        rewrite(self.json_path(name), data)


@pytest.fixture
def files(storage: Path, clock: FakeClock) -> Storage:
    return Storage(storage, clock)


async def status_of(db: Database, name: str) -> Status:
    domain = await domain_store.get(db, name, None)
    assert domain is not None
    return domain.status


def errors(reconciler: Reconciler, cause: str) -> float:
    return sample(reconciler.metrics.render().decode(), ERRORS, cause=cause)


async def test_six_45_and_90_day_certificates_at_several_ages(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    ages: dict[str, Callable[[float], float]] = {
        "just-issued": lambda days: 60.0,
        "before-sixth": lambda days: days * DAY * 5 / 6 - HOUR,
        "after-sixth": lambda days: days * DAY * 5 / 6 + HOUR,
        "expired": lambda days: days * DAY + HOUR,
    }
    overdue = {"just-issued": False, "before-sixth": False, "after-sixth": True, "expired": True}
    names = {}
    for lifetime in (6, 45, 90):
        for age, at in ages.items():
            name = f"{age}-{lifetime}d.acme.test"
            await attach(db, tenant, name, clock, status=Status.ACTIVE)
            files.put(name, lifetime, at(lifetime))
            names[name] = (lifetime, age)
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    for name, (lifetime, age) in names.items():
        domain = await domain_store.get(db, name, None)
        assert domain is not None and domain.cert_expires_at is not None
        want = Status.EXPIRING if overdue[age] else Status.ACTIVE
        assert domain.status is want, name
        assert domain.cert_renewal_due_at == pytest.approx(
            domain.cert_expires_at - lifetime * DAY / 6
        )
    # A sans-only `.json` (no ARI) is no error.
    assert errors(reconciler, "metadata") == 0

    # The domain object shows when the renewal is due, next to when the certificate ends.
    domain = await domain_store.get(db, "just-issued-6d.acme.test", None)
    assert domain is not None and domain.cert_expires_at is not None
    shown = domain_json(domain, settings, clock())
    due = datetime.fromisoformat(shown["cert_renewal_due_at"])
    ends = datetime.fromisoformat(shown["cert_expires_at"])
    assert ends - due == timedelta(days=1)


async def test_an_ari_window_moved_into_the_past_then_refreshed_alone(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    now = clock()
    name = "ari.acme.test"
    await attach(db, tenant, name, clock, status=Status.VERIFIED)
    pem = files.put(name, 90, 10 * DAY)
    quiet = [f"q{i}.acme.test" for i in range(3)]
    for other in quiet:
        await attach(db, tenant, other, clock, status=Status.VERIFIED)
        files.put(other, 90, 10 * DAY)
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    assert await status_of(db, name) is Status.ACTIVE

    # The CA moves the window into the past (a mass revocation ahead, say): Caddy rewrites the
    # `.json` alone. The lifetime says fine; the renewal is overdue all the same.
    files.ari(name, pem, start=now - DAY, end=now - HOUR)
    assert await reconciler.scan_certs() == 1
    assert reconciler.certs.last_scan == ScanScope(full=False, planned=1)
    assert reconciler.certs.scanner.parsed == 4  # the .crt was not parsed again
    domain = await domain_store.get(db, name, None)
    assert domain is not None
    assert domain.status is Status.EXPIRING
    assert domain.cert_renewal_due_at == pytest.approx(now - HOUR)

    # An ARI refresh moves it back into the future: active again, noticed just as well.
    files.ari(name, pem, start=now + 40 * DAY, end=now + 42 * DAY)
    assert await reconciler.scan_certs() == 1
    domain = await domain_store.get(db, name, None)
    assert domain is not None
    assert domain.status is Status.ACTIVE
    assert domain.cert_renewal_due_at == pytest.approx(now + 42 * DAY)
    assert {await status_of(db, n) for n in quiet} == {Status.ACTIVE}
    assert errors(reconciler, "metadata") == 0


async def test_a_window_given_for_another_certificate_is_ignored(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    # Caddy stores the renewed .crt, then the .json: between the two, the .json still holds the
    # old certificate's window, which is over (that is why it renewed).
    now = clock()
    name = "renewing.acme.test"
    await attach(db, tenant, name, clock, status=Status.EXPIRING)
    old = files.put(name, 90, 80 * DAY)
    files.put(name, 90, 60.0)  # the renewed certificate
    files.ari(name, old, start=now - 2 * DAY, end=now - DAY)
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    assert await status_of(db, name) is Status.ACTIVE
    assert errors(reconciler, "metadata") == 0


async def test_a_corrupt_or_missing_json_changes_nothing_and_is_counted_once(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = {"corrupt": 80 * DAY, "missing": 10 * DAY, "fine": 80 * DAY}
    for label, age in names.items():
        await attach(db, tenant, f"{label}.acme.test", clock, status=Status.VERIFIED)
        files.put(f"{label}.acme.test", 90, age)
    rewrite(files.json_path("corrupt.acme.test"), b'{"sans": ["corrupt.acme.test"], "issuer_da\x00')
    files.json_path("missing.acme.test").unlink()
    reconciler = await holding(settings, db, clock=clock)
    with caplog.at_level(logging.WARNING, logger="reconciler.certificates.storage"):
        for _ in range(3):
            await reconciler.scan_certs()
    # The lifetime alone decides: 10 of 90 days left is overdue, 80 is not.
    assert await status_of(db, "corrupt.acme.test") is Status.EXPIRING
    assert await status_of(db, "missing.acme.test") is Status.ACTIVE
    assert await status_of(db, "fine.acme.test") is Status.EXPIRING
    assert errors(reconciler, "metadata") == 2
    assert errors(reconciler, "corrupt") == 0
    warned = [r.getMessage() for r in caplog.records]
    assert sum("corrupt.acme.test.json" in m for m in warned) == 1
    assert sum("missing.acme.test.json" in m for m in warned) == 1
    assert len(warned) == 2


async def test_a_json_caught_half_written_keeps_the_window_last_read(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    now = clock()
    name = "half.acme.test"
    await attach(db, tenant, name, clock, status=Status.VERIFIED)
    pem = files.put(name, 45, 5 * DAY)
    files.ari(name, pem, start=now - DAY, end=now - HOUR)
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    assert await status_of(db, name) is Status.EXPIRING

    # Caddy 2.8 rewrites it in place: a scan meets it empty, then cut short. Neither is taken for
    # "no window" (that would send domain.active, then domain.expiring again): nothing moves.
    whole = files.json_path(name).read_bytes()
    for part in (b"", whole[: len(whole) // 2]):
        rewrite(files.json_path(name), part)
        assert await reconciler.scan_certs() == 0
        assert await reconciler.scan_certs() == 0
        assert await status_of(db, name) is Status.EXPIRING
    assert errors(reconciler, "metadata") == 2  # once per version, not per scan

    # Whole again, with a window the CA moved back: active.
    files.ari(name, pem, start=now + 20 * DAY, end=now + 25 * DAY)
    assert await reconciler.scan_certs() == 1
    assert await status_of(db, name) is Status.ACTIVE


async def test_a_json_that_cannot_be_stat_ed_keeps_the_window_and_is_logged_once(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = clock()
    name = "loop.acme.test"
    await attach(db, tenant, name, clock, status=Status.VERIFIED)
    pem = files.put(name, 90, 10 * DAY)
    files.ari(name, pem, start=now - DAY, end=now - HOUR)
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    assert await status_of(db, name) is Status.EXPIRING
    # A symlink to itself: stat() fails with ELOOP, whoever runs the test (root included).
    path = files.json_path(name)
    path.unlink()
    path.symlink_to(path.name)
    with caplog.at_level(logging.INFO, logger="reconciler.certificates.storage"):
        for _ in range(3):
            assert await reconciler.scan_certs() == 0
        assert await status_of(db, name) is Status.EXPIRING
        assert errors(reconciler, "unreadable") == 3  # at every attempt, as for a .crt
        path.unlink()
        files.ari(name, pem, start=now + 20 * DAY, end=now + 22 * DAY)
        assert await reconciler.scan_certs() == 1
    assert await status_of(db, name) is Status.ACTIVE
    logged = [r.getMessage() for r in caplog.records]
    assert [m for m in logged if "cannot stat" in m] == [logged[0]]
    assert any("can be read again" in m for m in logged)
    assert errors(reconciler, "metadata") == 0


async def test_only_the_crt_and_json_are_read_not_caddys_temporary_files(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    name = "tmp.acme.test"
    await attach(db, tenant, name, clock, status=Status.VERIFIED)
    files.put(name, 90, DAY)
    directory = files.json_path(name).parent
    # Caddy 2.9+ writes through temporary files beside the real ones, then renames them.
    for junk in (f"{name}.json.tmp1234", f".{name}.crt.5678", f"{name}.crt.tmp"):
        (directory / junk).write_bytes(b"{half")
    reconciler = await holding(settings, db, clock=clock)
    await reconciler.scan_certs()
    assert await status_of(db, name) is Status.ACTIVE
    assert reconciler.certs.scanner.parsed == 1
    assert reconciler.certs.scanner.metadata_read == 1
    assert errors(reconciler, "metadata") == errors(reconciler, "corrupt") == 0


async def test_expiring_days_replaces_the_rule_and_ignores_the_ari_window(
    db: Database,
    tenant: Tenant,
    settings: Settings,
    files: Storage,
    clock: FakeClock,
) -> None:
    now = clock()
    fixed = dataclasses.replace(settings, expiring_days=3.0)
    six = "six.acme.test"  # 6-day, 2 days old: 4 days left, more than the 3 days set
    await attach(db, tenant, six, clock, status=Status.VERIFIED)
    files.put(six, 6, 2 * DAY)
    ari = "ari.acme.test"  # 90-day with a window that is over: the override ignores it
    await attach(db, tenant, ari, clock, status=Status.VERIFIED)
    files.ari(ari, files.put(ari, 90, 10 * DAY), start=now - DAY, end=now - HOUR)
    late = "late.acme.test"  # 45-day with 2 days left
    await attach(db, tenant, late, clock, status=Status.VERIFIED)
    files.put(late, 45, 43 * DAY)
    reconciler = await holding(fixed, db, clock=clock)
    await reconciler.scan_certs()
    assert [await status_of(db, n) for n in (six, ari, late)] == [
        Status.ACTIVE,
        Status.ACTIVE,
        Status.EXPIRING,
    ]
    domain = await domain_store.get(db, six, None)
    assert domain is not None and domain.cert_expires_at is not None
    assert domain.cert_renewal_due_at == pytest.approx(domain.cert_expires_at - 3 * DAY)
    # Without the override, the 6-day certificate is fine too (4 of 6 days left) and the ARI
    # window decides the 90-day one.
    await (await holding(settings, db, clock=clock)).scan_certs()
    assert [await status_of(db, n) for n in (six, ari, late)] == [
        Status.ACTIVE,
        Status.EXPIRING,
        Status.EXPIRING,
    ]


async def test_a_database_from_before_the_renewal_column_is_upgraded_and_filled(
    settings: Settings, files: Storage, clock: FakeClock
) -> None:
    # A live domain in a database from before sql/004_cert_renewal.sql: cert_expires_at and its
    # index, no renewal column (and none of the later migrations' tables).
    async with await open_database(settings.db) as db:
        tenant, _token = await tenants.create(db, "acme", clock)
        await attach(db, tenant, "old.acme.test", clock, status=Status.ACTIVE)
    files.put("old.acme.test", 90, 10 * DAY)
    for statement in (
        "DROP TABLE job_runs",
        "ALTER TABLE leases DROP COLUMN token",
        "DROP TABLE edge_cleanups",
        "DROP TABLE edge_certificates",
        "DROP TABLE edges",
        "DROP TABLE cert_storages",
        "DROP INDEX domains_cert_due",
        "ALTER TABLE domains DROP COLUMN cert_renewal_due_at",
        "CREATE INDEX domains_cert_window ON domains (cert_expires_at) WHERE status = 'active'",
        # Last: SQLite checks every trigger's tables when a column is dropped. 006's counter is
        # SQLite's alone; its triggers are made again with it.
        "DROP TABLE IF EXISTS change_counter",
    ):
        sql(settings.db, statement)
    # 009's counts, and the triggers that keep them.
    if isinstance(settings.db, PostgresServer):
        later = ["DROP FUNCTION domain_counts_keep() CASCADE"]
    else:
        later = [f"DROP TRIGGER domain_counts_on_{op}" for op in ("insert", "update", "delete")]
    for statement in [*later, "DROP TABLE domain_counts"]:
        sql(settings.db, statement)
    if isinstance(settings.db, PostgresServer):
        sql(settings.db, "DELETE FROM schema_migrations WHERE version >= 4")
    else:
        sql(settings.db, "PRAGMA user_version = 3")
    async with await open_database(settings.db) as db:
        domain = await domain_store.get(db, "old.acme.test", None)
        assert domain is not None and domain.cert_renewal_due_at is None
        await (await holding(settings, db, clock=clock)).scan_certs()
        domain = await domain_store.get(db, "old.acme.test", None)
        assert domain is not None and domain.cert_expires_at is not None
        assert domain.status is Status.ACTIVE
        assert domain.cert_renewal_due_at == pytest.approx(domain.cert_expires_at - 15 * DAY)
    if isinstance(settings.db, PostgresServer):
        indexes = {row[0] for row in sql(settings.db, "SELECT indexname FROM pg_indexes")}
        version = sql(settings.db, "SELECT max(version) FROM schema_migrations")
    else:
        indexes = {row[0] for row in sql(settings.db, "SELECT name FROM sqlite_master")}
        version = sql(settings.db, "PRAGMA user_version")
    assert "domains_cert_due" in indexes and "domains_cert_window" not in indexes
    assert version == [(len(migrations()),)]
