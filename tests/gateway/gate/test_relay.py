"""Gate workers follow their gateway's follower over its relay (`gateway.gate.relay`), never
the database: one follower per edge. On both stores: the worker loads what the gateway holds
and follows every change it reads; it starts over when the gateway's follower does (and keeps
no row the gateway dropped); it answers from memory while the stream is broken and reads on
from where it was once it is back; its /metrics counts are the gateway's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from domaingate.settings import Settings
from domaingate.store.errors import FeedDiverged
from gateway.gate.context import Gate
from gateway.gate.relay import Relay, RelayedFeed
from gateway.gate.relay_feed import RelayFeed
from gateway.metrics import Metrics
from tests.conftest import both_backends, make_settings, set_status, sql
from tests.domaingate.cli.test_cli import prepare
from tests.support.wait import await_until

INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (?, 1, 'web', ?, 'subdomain', 'cname', 'dg_x', 0, 0)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    db = both_backends(request, tmp_path / "relay.db")
    prepare(db, "acme")
    sql(db, "INSERT INTO apps (name, tenant_id, created_at, updated_at) VALUES ('web', 1, 0, 0)")
    return db


@dataclass
class Edge:
    db: Path | str
    settings: Settings
    gateway: Gate
    worker: Gate

    @property
    def relay(self) -> Relay:
        assert self.gateway.relay is not None
        return self.gateway.relay

    @property
    def feed(self) -> RelayFeed:
        assert isinstance(self.worker.follower.feed, RelayFeed)
        return self.worker.follower.feed


@pytest.fixture
async def edge(where: Path | str) -> AsyncIterator[Edge]:
    sql(where, INSERT, ("old.acme.com", "active"))
    sql(where, INSERT, ("wait.acme.com", "pending"))
    settings = make_settings(where, gate_workers=3, upstream_template="{app}.{tenant}.svc:80")
    gateway = Gate.of(settings, Metrics())
    async with gateway.running():
        assert gateway.relay is not None
        worker = Gate.worker(settings, Metrics(), gateway.relay.path)
        async with worker.running():
            yield Edge(where, settings, gateway, worker)


def same(edge: Edge) -> bool:
    return sorted(edge.worker.allowlist.entries()) == sorted(edge.gateway.allowlist.entries())


async def test_a_worker_loads_and_follows_what_its_gateway_reads(edge: Edge) -> None:
    worker = edge.worker.allowlist
    assert worker.route_for("old.acme.com") == ("web", "web.acme.svc:80")
    assert "wait.acme.com" not in worker
    assert same(edge)
    sql(edge.db, INSERT, ("new.acme.com", "verified"))
    set_status(edge.db, "old.acme.com", "removed")
    await await_until(lambda: "new.acme.com" in worker, timeout=2)
    await await_until(lambda: "old.acme.com" not in worker, timeout=2)
    # An app's own upstream reaches the worker through its domains' rows.
    sql(edge.db, "UPDATE apps SET upstream = '10.0.0.7:81' WHERE name = 'web'")
    await await_until(lambda: worker.route_for("new.acme.com") == ("web", "10.0.0.7:81"), timeout=2)
    assert same(edge)
    assert worker.last_seq == edge.gateway.allowlist.last_seq
    # /metrics' counts: the gateway's, asked over the relay.
    counts = {"removed": 1, "verified": 1, "pending": 1}
    assert await edge.gateway.follower.count_by_status() == counts
    assert await edge.worker.follower.count_by_status() == counts
    assert edge.feed.loads == 1
    assert edge.worker.follower.errors == 0


async def test_a_worker_starts_over_when_its_gateway_does(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql(edge.db, INSERT, ("gone.acme.com", "active"))
    await await_until(lambda: "gone.acme.com" in edge.worker.allowlist, timeout=2)
    # Deleted without a change the feed can see (as a restore or a failover would lose it):
    # only a load made again drops it.
    sql(edge.db, "DELETE FROM domains WHERE hostname = 'gone.acme.com'")
    feed = edge.gateway.follower.feed
    assert isinstance(feed, RelayedFeed)
    inner = feed.inner
    read = inner.changes
    diverged = False

    async def diverging(*, aside: bool = False) -> list[object]:
        nonlocal diverged
        if not diverged:
            diverged = True
            raise FeedDiverged("another server answers")
        return await read(aside=aside)  # type: ignore[return-value]

    monkeypatch.setattr(inner, "changes", diverging)
    await await_until(lambda: "gone.acme.com" not in edge.gateway.allowlist, timeout=3)
    await await_until(lambda: "gone.acme.com" not in edge.worker.allowlist, timeout=3)
    assert edge.feed.loads == 2
    assert "old.acme.com" in edge.worker.allowlist
    sql(edge.db, INSERT, ("after.acme.com", "active"))
    await await_until(lambda: "after.acme.com" in edge.worker.allowlist, timeout=2)
    assert same(edge)


async def test_a_broken_stream_is_answered_through_and_read_on_from_where_it_was(
    edge: Edge,
) -> None:
    worker = edge.worker.allowlist
    for stream in list(edge.relay._workers):
        stream.writer.transport.abort()
    # Committed while the stream is down: the reconnected worker is sent what it missed.
    sql(edge.db, INSERT, ("meanwhile.acme.com", "active"))
    assert "old.acme.com" in worker
    await await_until(lambda: "meanwhile.acme.com" in worker, timeout=3)
    await await_until(lambda: edge.worker.follower.errors >= 1, timeout=3)
    assert edge.feed.loads == 1  # resumed, not loaded again
    sql(edge.db, INSERT, ("later.acme.com", "active"))
    await await_until(lambda: "later.acme.com" in worker, timeout=2)
    assert same(edge)


async def test_a_worker_answers_from_memory_while_its_gateway_is_gone(where: Path | str) -> None:
    sql(where, INSERT, ("old.acme.com", "active"))
    settings = make_settings(where, gate_workers=3)
    nowhere = Gate.worker(settings, Metrics(), Path("/nonexistent/relay.sock"))
    async with nowhere.running():
        # Nothing to answer from, and it keeps trying (its process stays off the port until it
        # has a load: gateway.gate.worker).
        await await_until(lambda: nowhere.follower.errors >= 1, timeout=10)
        assert not nowhere.allowlist.loaded and len(nowhere.allowlist) == 0
    gateway = Gate.of(settings, Metrics())
    async with contextlib.AsyncExitStack() as stack:
        serving = gateway.running()
        await serving.__aenter__()
        assert gateway.relay is not None
        worker = await stack.enter_async_context(
            Gate.worker(settings, Metrics(), gateway.relay.path).running()
        )
        assert "old.acme.com" in worker.allowlist
        await serving.__aexit__(None, None, None)  # the gateway goes, relay and all
        await await_until(lambda: worker.follower.errors >= 2, timeout=10)
        assert "old.acme.com" in worker.allowlist
