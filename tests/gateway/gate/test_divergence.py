"""A database that goes back under a running gate (a restore; on PostgreSQL the same as a
failover to a standby that missed the last commits): the gate must not go on allowing what the
database no longer holds, nor miss what is verified afterwards, whose change numbers fall at or
below what it had read. The feed notices (FeedDiverged) and the follower loads everything again.
The failover itself, with a real standby and a gateway process, is tests/e2e/test_failover.py.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway.keys import GATE
from tests.conftest import Api, Client, both_backends, gate_synced, set_status, sql, tls_ask
from tests.support.wait import await_until


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


def _restore_point(db: Path | str, tmp_path: Path) -> object:
    """Remember the database as it is: a copy of the SQLite file, or PostgreSQL's newest
    change number (what a restored dump sets its sequence back to)."""
    if isinstance(db, Path):
        copy = tmp_path / "backup.db"
        with sqlite3.connect(db) as source, sqlite3.connect(copy) as backup:
            source.backup(backup)
        return copy
    return sql(db, "SELECT last_value FROM domains_change_seq")[0][0]


def _restore(db: Path | str, point: object, lost: list[str]) -> None:
    """Put the database back to `point`: the names verified since are not verified there (on
    PostgreSQL, not there at all: the backup was taken before them)."""
    if isinstance(db, Path):
        assert isinstance(point, Path)
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        staged = db.with_name("restored.db")
        shutil.copyfile(point, staged)
        os.replace(staged, db)  # a new file (inode) under the gate's open connection
        return
    for name in lost:
        sql(
            db,
            "DELETE FROM domain_events"
            " WHERE domain_id IN (SELECT id FROM domains WHERE hostname = ?)",
            (name,),
        )
        sql(db, "DELETE FROM domains WHERE hostname = ?", (name,))
    sql(db, "SELECT setval('domains_change_seq', ?)", (point,))


async def test_a_database_gone_back_is_loaded_again(
    api: Api, internal: Client, tmp_path: Path
) -> None:
    token = await api.tenant("acme")
    for name in ("kept.acme.com", "lost.acme.com", "lost2.acme.com", "later.acme.com"):
        await api.attach(token, name)
    set_status(api.db_target, "kept.acme.com", "verified")
    await gate_synced(api)
    point = _restore_point(api.db_target, tmp_path)
    # Two changes lost: the first number handed out after the restore is still below the
    # gate's cursor, whenever the gate reads. (A restore that hands out exactly the numbers it
    # lost before the gate reads is told by PostgreSQL's identity instead: a restored database
    # has a new object id, a promoted standby a new timeline.)
    set_status(api.db_target, "lost.acme.com", "verified")
    set_status(api.db_target, "lost2.acme.com", "verified")
    await gate_synced(api)
    assert await tls_ask(internal, "lost.acme.com") == 200
    follower = api.app[GATE].follower
    loads = follower.loads

    _restore(api.db_target, point, ["lost.acme.com", "lost2.acme.com"])
    # Verified after the restore: numbered at or below what the gate had read.
    set_status(api.db_target, "later.acme.com", "verified")

    async def mended() -> bool:
        return (
            await tls_ask(internal, "lost.acme.com") == 403
            and await tls_ask(internal, "lost2.acme.com") == 403
            and await tls_ask(internal, "later.acme.com") == 200
        )

    await await_until(mended, timeout=5, interval=0.05, what="the gate to load the database again")
    assert await tls_ask(internal, "kept.acme.com") == 200
    assert follower.loads == loads + 1
    # And it follows on from the new cursor.
    set_status(api.db_target, "kept.acme.com", "failed")

    async def followed() -> bool:
        return await tls_ask(internal, "kept.acme.com") == 403

    await await_until(followed, timeout=5, interval=0.05, what="the gate to follow on")
