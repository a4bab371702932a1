"""Check outcomes written in batches: each one a compare-and-set, moves logged with their events
and outbox rows, and concurrent outcomes grouped into few transactions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domaingate.lifecycle.dns import CheckOutcome, CheckPlan
from domaingate.lifecycle.moves import Move
from domaingate.models import Domain, Tenant
from domaingate.states import IllegalTransition, Status
from domaingate.store import events
from domaingate.store.abc import Database
from domaingate.store.checks import apply_checks
from reconciler.writer import CheckWriter
from tests.conftest import sql, sql_rows

from .conftest import FakeClock, attach, walk


def plan(target: Status | None, *, code: str | None = None, next_at: float = 9e9) -> CheckPlan:
    """A plan for a pending domain."""
    move = None
    if target is not None:
        move = Move(source=Status.PENDING, target=target, reason="checked", message="by the test")
    return CheckPlan(
        move=move,
        last_check_code=code,
        last_check_message=f"{code}: fix it" if code else None,
        failure_count=1 if code else 0,
        failing_since=1.0 if code else None,
        next_check_at=next_at,
        dns_provider="knot",
    )


def row(db: Database, domain: Domain) -> dict[str, Any]:
    [found] = sql_rows(db.target, "SELECT * FROM domains WHERE id = ?", (domain.id,))
    return found


def outbox(db: Database) -> list[str]:
    return [r[0] for r in sql(db.target, "SELECT event_id FROM webhook_outbox")]


async def test_a_batch_writes_each_outcome_or_none_of_it(
    db: Database, tenant: Tenant, clock: FakeClock
) -> None:
    promoted = await attach(db, tenant, "up.acme.test", clock)
    failing = await attach(db, tenant, "down.acme.test", clock)
    stale = await attach(db, tenant, "stale.acme.test", clock)
    live = await attach(db, tenant, "live.acme.test", clock, status=Status.ACTIVE)
    # Moved by another writer after the check read it: its outcome must not be written.
    await walk(db, stale, (Status.VERIFIED,), clock)
    before_stale = dict(row(db, stale))

    written = await apply_checks(
        db,
        [
            CheckOutcome(domain=promoted, plan=plan(Status.VERIFIED, next_at=100), now=50),
            CheckOutcome(domain=failing, plan=plan(None, code="cname_missing"), now=51),
            CheckOutcome(domain=stale, plan=plan(Status.VERIFIED), now=52),
            CheckOutcome(domain=live, plan=plan(None, next_at=200), now=53),
            # The same domain twice in one batch: only the first is written.
            CheckOutcome(domain=failing, plan=plan(Status.FAILED), now=54),
        ],
    )

    assert written == [True, True, False, True, False]
    up = row(db, promoted)
    assert (up["status"], up["verified_at"], up["next_check_at"]) == ("verified", 50, 100)
    assert up["last_checked_at"] == 50 and up["last_check_code"] is None
    down = row(db, failing)
    assert down["status"] == "pending"
    assert (down["last_check_code"], down["failure_count"]) == ("cname_missing", 1)
    assert dict(row(db, stale)) == before_stale
    assert (row(db, live)["status"], row(db, live)["next_check_at"]) == ("active", 200)
    # One event for the one move, with its outbox row; none for the others.
    moves = [e for e in await events.for_domain(db, promoted.id) if e.type == "domain.verified"]
    assert [(m.from_status, m.to_status, m.reason) for m in moves] == [
        (Status.PENDING, Status.VERIFIED, "checked")
    ]
    assert moves[0].event_id in outbox(db)
    assert [e.type for e in await events.for_domain(db, failing.id)] == ["domain.created"]


async def test_an_illegal_move_is_refused_before_anything_is_written(
    db: Database, tenant: Tenant, clock: FakeClock
) -> None:
    domain = await attach(db, tenant, "p.acme.test", clock)
    with pytest.raises(IllegalTransition):
        CheckOutcome(domain=domain, plan=plan(Status.ACTIVE), now=1)


async def test_concurrent_outcomes_share_transactions(
    db: Database, tenant: Tenant, clock: FakeClock
) -> None:
    domains = [await attach(db, tenant, f"n{i}.acme.test", clock) for i in range(60)]
    writer = CheckWriter(db, max_batch=25)
    results = await asyncio.gather(
        *(writer.write(CheckOutcome(domain=d, plan=plan(Status.VERIFIED), now=10)) for d in domains)
    )
    await writer.close()
    assert results == [True] * 60
    assert writer.written == 60
    # The first outcome goes alone; the rest queue behind it, at most 25 to a batch.
    assert 3 <= writer.batches <= 4
    assert {row(db, d)["status"] for d in domains} == {"verified"}
    assert len(outbox(db)) == 60


async def test_a_failed_batch_fails_each_of_its_writers(
    db: Database, tenant: Tenant, clock: FakeClock
) -> None:
    domains = [await attach(db, tenant, f"f{i}.acme.test", clock) for i in range(3)]
    writer = CheckWriter(db)
    await db.close()  # every write now fails
    results = await asyncio.gather(
        *(writer.write(CheckOutcome(domain=d, plan=plan(None), now=10)) for d in domains),
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) for r in results), results
    await writer.close()
