"""The purge of removed domains after REMOVED_RETENTION: rows, events and outbox rows go together,
never before the retention has passed nor before their certificates were cleaned up."""

from __future__ import annotations

from pathlib import Path

from domaingate.lifecycle.limits import COOLDOWN_SECONDS
from domaingate.models import Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.retention import purge_removed
from tests.conftest import FakeClock, sql

from .conftest import attach, holding

RETENTION = 2592000


def counts(db: Database) -> tuple[int, int, int]:
    domains, events, outbox = (
        int(sql(db.target, f"SELECT count(*) FROM {table}")[0][0])
        for table in ("domains", "domain_events", "webhook_outbox")
    )
    return domains, events, outbox


async def test_removed_domains_are_purged_after_the_retention(
    db: Database, tenant: Tenant, settings: Settings, clock: FakeClock
) -> None:
    assert settings.removed_retention == RETENTION
    kept = await attach(db, tenant, "kept.acme.test", clock, status=Status.ACTIVE)
    for i in range(3):
        gone = await attach(db, tenant, f"gone{i}.acme.test", clock, status=Status.VERIFIED)
        await domain_store.remove(db, gone, clock)
    assert counts(db)[0] == 4
    reconciler = await holding(settings, db, clock=clock)

    clock.advance(RETENTION - 1)
    await reconciler.clean_up()  # cleans the certificates; too early to purge
    assert counts(db)[0] == 4
    clock.advance(2)
    await reconciler.clean_up()
    assert sql(db.target, "SELECT hostname FROM domains") == [("kept.acme.test",)]
    # The live domain keeps its whole history; nothing refers to a purged row.
    events, outbox = counts(db)[1:]
    assert events == len(
        sql(db.target, "SELECT 1 FROM domain_events WHERE domain_id = ?", (kept.id,))
    )
    assert outbox == len(
        sql(
            db.target,
            "SELECT 1 FROM webhook_outbox o JOIN domain_events e USING (event_id)"
            " WHERE e.domain_id = ?",
            (kept.id,),
        )
    )
    if isinstance(db.target, Path):
        # PostgreSQL checks its foreign keys at each statement; SQLite is asked.
        assert sql(db.target, "PRAGMA foreign_key_check") == []


async def test_a_removal_not_yet_cleaned_up_is_kept(
    db: Database, tenant: Tenant, clock: FakeClock
) -> None:
    gone = await attach(db, tenant, "gone.acme.test", clock, status=Status.ACTIVE)
    await domain_store.remove(db, gone, clock)
    clock.advance(RETENTION + 1)
    # Its certificates were never deleted: the row stays until they are.
    assert await purge_removed(db, before=clock() - RETENTION) == 0
    assert counts(db)[0] == 1


async def test_the_purge_works_in_batches(db: Database, tenant: Tenant, clock: FakeClock) -> None:
    for i in range(7):
        gone = await attach(db, tenant, f"gone{i}.acme.test", clock)
        await domain_store.remove(db, gone, clock)
    sql(db.target, "UPDATE domains SET certs_cleaned_at = removed_at")
    clock.advance(RETENTION + 1)
    assert await purge_removed(db, before=clock() - RETENTION, batch=3) == 7
    assert counts(db) == (0, 0, 0)


def test_the_default_retention_outlasts_the_cooldown() -> None:
    assert RETENTION > COOLDOWN_SECONDS
