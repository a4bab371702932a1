"""What a crash is and what it may leave: SIGKILL, and the audit of the database afterwards.

`kill()` sends SIGKILL, nothing gentler. `audit()` reads the database the way an operator would
after the crash and fails on anything a half-applied write could have left behind. The daemons
themselves come from the `daemons` fixture here: tests.support.domaingate's, on both backends.
"""

from __future__ import annotations

import os
import signal
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from domaingate.states import WEBHOOK_STATUSES, Status, can_move, event_type
from tests.conftest import sql
from tests.support.domaingate import Daemons
from tests.support.process import Process

# What the crash tests poll webhook delivery at (the daemon's default is seconds), so that a
# delivery is under way when a kill lands.
WEBHOOK_INTERVAL = 0.1


@pytest.fixture(params=["sqlite", "postgresql"])
def daemons(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Daemons]:
    """The crash tests' `daemons` (tests.support.fixtures), on SQLite or on PostgreSQL (each
    Domaingate a fresh database of the session's cluster); all stopped at teardown."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None
    factory = Daemons(tmp_path, cluster)
    try:
        yield factory
    finally:
        factory.stop()


def kill(process: Process) -> None:
    """SIGKILL the process (and its session): no signal handler, no shutdown, no last commit."""
    pid = process.pid
    assert pid is not None and process.running, f"{process.name} is not running"
    os.killpg(pid, signal.SIGKILL)
    assert process.stop() == -signal.SIGKILL, f"{process.name} ended before the kill"


@dataclass(frozen=True, slots=True)
class Move:
    """One row of `domain_events`."""

    event_id: str
    type: str
    source: str | None
    target: str


def audit(db: Path | str) -> dict[int, list[Move]]:
    """Fail on any trace of a half-applied write; returns each domain's events, oldest first.

    The database is sound; every domain's events start with its creation and form one continuous
    chain of allowed moves ending in its current status; every webhook-type event has its outbox
    row and no outbox row lacks its event; removed rows, and only they, carry `removed_at`.
    """
    if isinstance(db, Path):
        # PostgreSQL enforces its foreign keys itself, and has no file to check.
        assert sql(db, "PRAGMA integrity_check") == [("ok",)]
        assert sql(db, "PRAGMA foreign_key_check") == []
    domains = {
        domain_id: (hostname, status, removed_at)
        for domain_id, hostname, status, removed_at in sql(
            db, "SELECT id, hostname, status, removed_at FROM domains"
        )
    }
    chains: dict[int, list[Move]] = defaultdict(list)
    for domain_id, *fields in sql(
        db,
        "SELECT domain_id, event_id, type, from_status, to_status FROM domain_events ORDER BY id",
    ):
        chains[domain_id].append(Move(*fields))
    assert chains.keys() <= domains.keys()
    webhook_events = set()
    for domain_id, (hostname, status, removed_at) in domains.items():
        chain = chains[domain_id]
        assert chain, f"{hostname} (id {domain_id}) has no events"
        first = chain[0]
        assert (first.type, first.source, first.target) == ("domain.created", None, "pending"), (
            hostname,
            chain,
        )
        for before, after in pairwise(chain):
            assert after.source == before.target, (hostname, chain)
            assert can_move(Status(before.target), Status(after.target)), (hostname, chain)
            assert after.type == event_type(Status(after.target)), (hostname, after)
            if Status(after.target) in WEBHOOK_STATUSES:
                webhook_events.add(after.event_id)
        assert chain[-1].target == status, (hostname, status, chain)
        assert (removed_at is not None) == (status == "removed"), (hostname, status, removed_at)
    outbox = {event_id for (event_id,) in sql(db, "SELECT event_id FROM webhook_outbox")}
    assert outbox == webhook_events
    return dict(chains)
