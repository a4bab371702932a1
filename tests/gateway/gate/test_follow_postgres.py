"""The gate's allowlist on PostgreSQL: woken by LISTEN/NOTIFY, and never missing a change.

Each of the two failure modes has a test: a change committed out of sequence order (a bare
`seq > cursor` read would skip it), and notifications lost while the listener's connection was
down (read again from the cursor on reconnect; a slow poll if a wake-up never comes). The rows
are the gate's (`GATE_SELECT`): an app's new upstream reaches the gate through its domains, and a
domain whose app is not its tenant's is never allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from domaingate.store.apps import GATE_SELECT
from domaingate.store.postgres import changes
from domaingate.store.postgres.feed import PostgresFeed
from gateway.gate.allowlist import Allowlist, Loading
from gateway.gate.follow import Follower
from tests.conftest import sql

pytestmark = pytest.mark.postgres

INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (%s, 1, 'shop', %s, 'subdomain', 'cname', 'dg_x', 0, 0)"
)


@pytest.fixture
def db(pg_url: str) -> str:
    sql(pg_url, "INSERT INTO tenants (name, token_hash, created_at) VALUES ('acme', ?, 0)", (b"h",))
    sql(
        pg_url,
        "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
        " VALUES ('shop', 1, NULL, 0, 0)",
    )
    return pg_url


def upstream(app: str, tenant: str) -> str:
    """UPSTREAM_TEMPLATE `{app}.{tenant}.svc:80`."""
    return f"{app}.{tenant}.svc:80"


async def until(check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def feed_of(sync: Follower) -> PostgresFeed:
    assert isinstance(sync.feed, PostgresFeed)
    return sync.feed


@contextlib.asynccontextmanager
async def following(
    db: str,
    allowlist: Allowlist,
    *,
    poll_interval: float,
    on_error: Callable[[], object] | None = None,
) -> AsyncIterator[Follower]:
    feed = PostgresFeed(db, poll_interval=poll_interval)
    async with Follower(feed, allowlist, upstream, on_error=on_error).running() as sync:
        yield sync


async def test_loads_what_is_allowed_and_is_woken_by_a_commit(db: str) -> None:
    sql(db, INSERT.replace("%s", "?"), ("old.acme.com", "active"))
    sql(db, INSERT.replace("%s", "?"), ("gone.acme.com", "removed"))
    allowlist = Allowlist()
    # No safety poll to speak of: only the notification can bring the change in time.
    async with following(db, allowlist, poll_interval=3600) as sync:
        assert "old.acme.com" in allowlist
        assert "gone.acme.com" not in allowlist
        sql(db, INSERT.replace("%s", "?"), ("new.acme.com", "verified"))
        took = await until(lambda: "new.acme.com" in allowlist, timeout=2)
        assert took < 1.0
        assert feed_of(sync).wakeups >= 1
        sql(db, "UPDATE domains SET status = 'removed' WHERE hostname = 'old.acme.com'")
        await until(lambda: "old.acme.com" not in allowlist, timeout=2)


async def test_a_change_committed_out_of_sequence_order_is_not_skipped(db: str) -> None:
    allowlist = Allowlist()
    sync = Follower(PostgresFeed(db, poll_interval=3600), allowlist, upstream)
    await sync.open()
    try:
        async with (
            await psycopg.AsyncConnection.connect(db) as early,
            await psycopg.AsyncConnection.connect(db, autocommit=True) as late,
        ):
            # `early` takes its sequence value first but commits last.
            await early.execute(INSERT, ("early.acme.com", "active"))
            await late.execute(INSERT, ("late.acme.com", "active"))
            await sync.poll()
            assert "late.acme.com" in allowlist
            assert "early.acme.com" not in allowlist  # not committed yet
            cursor = allowlist.last_seq
            await early.commit()
        [(early_seq,)] = sql(db, "SELECT seq FROM domains WHERE hostname = 'early.acme.com'")
        # What a bare `seq > cursor` read would have skipped:
        assert early_seq < cursor
        assert sql(db, "SELECT count(*) FROM domains WHERE seq > ?", (cursor,)) == [(0,)]
        await sync.poll()
        assert "early.acme.com" in allowlist
    finally:
        await sync.close()


async def test_an_out_of_order_commit_is_caught_while_following(db: str) -> None:
    allowlist = Allowlist()
    async with (
        following(db, allowlist, poll_interval=3600),
        await psycopg.AsyncConnection.connect(db) as early,
    ):
        await early.execute(INSERT, ("early.acme.com", "active"))
        sql(db, INSERT.replace("%s", "?"), ("late.acme.com", "active"))
        await until(lambda: "late.acme.com" in allowlist, timeout=2)
        await early.commit()
        await until(lambda: "early.acme.com" in allowlist, timeout=2)


async def terminate_listeners(db: str) -> int:
    """End every other session on the database, as a network cut or a restart would."""
    rows = sql(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid != pg_backend_pid()",
    )
    return len(rows)


async def test_changes_made_while_the_listener_was_down_are_read_on_reconnect(db: str) -> None:
    allowlist = Allowlist()
    errors = 0

    def counted() -> None:
        nonlocal errors
        errors += 1

    # No safety poll: only the re-read on reconnecting can bring the change in.
    async with following(db, allowlist, poll_interval=3600, on_error=counted):
        assert await terminate_listeners(db) >= 1
        # Committed while the follower's connection is gone: its notification reaches no one.
        sql(db, INSERT.replace("%s", "?"), ("meanwhile.acme.com", "active"))
        await until(lambda: "meanwhile.acme.com" in allowlist, timeout=5)
        assert errors >= 1
        # Following again: later changes arrive by notification as before.
        sql(db, INSERT.replace("%s", "?"), ("after.acme.com", "active"))
        await until(lambda: "after.acme.com" in allowlist, timeout=2)


async def test_a_wakeup_that_never_comes_is_covered_by_the_slow_poll(db: str) -> None:
    allowlist = Allowlist()
    async with following(db, allowlist, poll_interval=0.5) as sync:
        listening = feed_of(sync)._conn
        assert listening is not None
        # The follower stops hearing notifications (as if one were lost on the way).
        await listening.execute("UNLISTEN *")
        wakeups = feed_of(sync).wakeups
        sql(db, INSERT.replace("%s", "?"), ("quiet.acme.com", "active"))
        took = await until(lambda: "quiet.acme.com" in allowlist, timeout=3)
        assert took < 1.5
        assert feed_of(sync).wakeups == wakeups


async def test_an_apps_new_upstream_reaches_the_gate_by_notification(db: str) -> None:
    sql(db, INSERT.replace("%s", "?"), ("shop.acme.com", "active"))
    allowlist = Allowlist()
    async with following(db, allowlist, poll_interval=3600) as sync:
        assert allowlist.route_for("shop.acme.com") == ("shop", "shop.acme.svc:80")
        seq = allowlist.last_seq
        # Only the app's row changes: 003's trigger moves its domains' sequence on.
        sql(db, "UPDATE apps SET upstream = '10.1.2.3:8080' WHERE name = 'shop'")
        await until(lambda: allowlist.route_for("shop.acme.com") == ("shop", "10.1.2.3:8080"), 2)
        assert allowlist.last_seq > seq
        assert await sync.count_by_status() == {"active": 1}


async def test_a_domain_whose_app_is_not_its_tenants_is_never_allowed(db: str) -> None:
    sql(db, "INSERT INTO tenants (name, token_hash, created_at) VALUES ('globex', ?, 0)", (b"g",))
    sql(
        db,
        "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
        " created_at, updated_at) VALUES ('x.globex.com', 2, 'shop', 'active', 'subdomain',"
        " 'cname', 'dg_y', 0, 0)",
    )
    sql(db, INSERT.replace("%s", "?"), ("shop.acme.com", "active"))
    allowlist = Allowlist()
    async with following(db, allowlist, poll_interval=3600):
        assert "shop.acme.com" in allowlist
        assert "x.globex.com" not in allowlist
        # The app removed: its domains are withdrawn at the gate, by notification.
        sql(db, "UPDATE domains SET app = 'gone' WHERE hostname = 'shop.acme.com'")
        sql(db, "DELETE FROM apps WHERE name = 'shop'")
        sql(db, "UPDATE domains SET app = 'shop' WHERE hostname = 'shop.acme.com'")
        await until(lambda: "shop.acme.com" not in allowlist, timeout=2)


async def test_the_load_reads_what_gate_select_reads(db: str) -> None:
    # The load reads the domains table alone and resolves app and tenant itself: it must agree
    # with the join the changes are read with, row for row.
    sql(db, "INSERT INTO tenants (name, token_hash, created_at) VALUES ('globex', ?, 0)", (b"g",))
    sql(
        db,
        "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
        " VALUES ('api', 2, '10.0.0.9:81', 0, 0)",
    )
    for hostname, tenant, app, status in (
        ("own.acme.com", 1, "shop", "active"),
        ("theirs.acme.com", 1, "api", "verified"),  # an app of another tenant
        ("none.acme.com", 1, "nope", "expiring"),  # no such app
        ("api.globex.com", 2, "api", "active"),  # an app with its own upstream
        ("wait.globex.com", 2, "shop", "pending"),
        ("gone.acme.com", 1, "shop", "removed"),
    ):
        sql(
            db,
            "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'subdomain', 'cname', 'dg_x', 0, 0)",
            (hostname, tenant, app, status),
        )
    statuses = ["verified", "active", "expiring"]
    loaded, expected = Allowlist(), Allowlist()
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        loading = Loading(loaded, upstream)
        cursor = await changes.load(conn, statuses, loading.apps, loading.chunk)
        # The changes' way: the join, row by row, as the follower takes a change in.
        joined = await conn.execute(f"{GATE_SELECT} WHERE d.status = ANY(%s)", (statuses,))
        for row in await joined.fetchall():
            domain_id, hostname, app, status, own, owner, owned, _seq = changes._gate_row(row)
            expected.apply(
                domain_id, hostname, app, status, (own or upstream(app, owner)) if owned else None
            )
    names = [
        f"{name}.{zone}"
        for name in ("own", "theirs", "none", "wait", "gone")
        for zone in ("acme.com", "globex.com")
    ] + ["api.globex.com"]
    assert {n: loaded.route_for(n) for n in names} == {n: expected.route_for(n) for n in names}
    assert len(loaded) == len(expected) == 2
    assert loaded.route_for("api.globex.com") == ("api", "10.0.0.9:81")
    [(top,)] = sql(db, "SELECT max(seq) FROM domains")
    assert cursor.seq == top
