"""The gate's start with its PostgreSQL unreachable: it serves its snapshot (names it allowed
before, nothing else) until the database answers; a snapshot that is missing, damaged or of
another database is not used, and the gate denies everything meanwhile, saying why in its log.
With the server up it loads from it instead (tests/hardening/test_failover_postgres.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from domaingate.store.postgres.feed import PostgresFeed
from domaingate.targets import PostgresServer, described
from gateway.gate.allowlist import Allowlist
from gateway.gate.follow import Follower
from gateway.gate.snapshot import Origin, Snapshot
from tests.support.net import HOST, free_port

TEMPLATE = "{app}.internal:80"


def upstream(app: str, tenant: str) -> str:
    return f"{app}.internal:80"


@pytest.fixture
def url() -> str:
    """A PostgreSQL URL nothing answers at."""
    return f"postgresql://dg@{HOST}:{free_port()}/dg"


def _snapshot(path: Path, url: str) -> Snapshot:
    return Snapshot(path, described(PostgresServer(url)), TEMPLATE)


def _written(snapshot: Snapshot, *, age: float) -> None:
    origin = Origin(
        database=snapshot.database, identity="1/dg.5/1", seq=7, synced_at=time.time() - age
    )
    snapshot.write({"shop.acme.com": (1, "shop", "shop.internal:80")}, origin)


async def test_unreachable_at_start_serves_the_snapshot(url: str, tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path / "gate.snapshot", url)
    _written(snapshot, age=120)
    allowlist = Allowlist()
    follower = Follower(PostgresFeed(url), allowlist, upstream, snapshot=snapshot)
    async with follower.running():
        assert allowlist.loaded and allowlist.source == "snapshot"
        assert "shop.acme.com" in allowlist and "other.acme.com" not in allowlist
        assert allowlist.route_for("shop.acme.com") == ("shop", "shop.internal:80")
        # Its age is the snapshot's, not the start's.
        assert time.monotonic() - allowlist.synced_at >= 120


@pytest.mark.parametrize("case", ["missing", "damaged", "another database"])
async def test_an_unusable_snapshot_starts_denying_and_says_why(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path = tmp_path / "gate.snapshot"
    if case == "damaged":
        _written(_snapshot(path, url), age=1)
        path.write_bytes(path.read_bytes()[:-3])
    if case == "another database":
        _written(_snapshot(path, f"postgresql://dg@{HOST}:1/elsewhere"), age=1)
    allowlist = Allowlist()
    follower = Follower(PostgresFeed(url), allowlist, upstream, snapshot=_snapshot(path, url))
    with caplog.at_level(logging.WARNING):
        async with follower.running():
            assert not allowlist.loaded and len(allowlist) == 0
    reason = {"missing": "there is none", "damaged": "checksum", "another database": "another"}
    assert any(
        "gate snapshot" in r.message and reason[case] in r.message and "denying" in r.message
        for r in caplog.records
    ), [r.message for r in caplog.records]
