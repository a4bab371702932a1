"""The reconciler killed with SIGKILL mid-pass and mid-delivery, then restarted.

Real knot serves the CNAMEs of hundreds of pending domains and Caddy-shaped storage holds some of
their certificates, so DNS checks and certificate moves are under way when the kills land (at
seeded points). After the last restart the work completes: every domain moved exactly once per
step, no event lost or doubled, and every event reached a slow webhook receiver at least once,
signed, with the outbox marking each delivered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import accumulate
from pathlib import Path

import pytest
from aiohttp import web

from domaingate.models import Tenant
from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from tests.conftest import sql
from tests.conftest import target as db_target_of
from tests.hardening.crashes import WEBHOOK_INTERVAL, Move, audit, daemons, kill
from tests.reconciler.conftest import (
    DAY,
    SECRET,
    Receiver,
    attach,
    make_issuer,
    make_leaf_pem,
    store_cert,
)
from tests.support.domaingate import Daemons
from tests.support.knot import Knot
from tests.support.wait import await_until

__all__ = ["daemons"]  # both backends (tests.hardening.crashes), re-exported for pytest

pytestmark = pytest.mark.knot

SEED = 63
PLATFORM = {"apps.test": "shop A 192.0.2.10\n"}
ISSUER_KEY = "acme-v02.api.letsencrypt.org-directory"

Factory = Callable[[Mapping[str, str]], Knot]


def daemon_env(knot: Knot, storage: Path, **more: str) -> dict[str, str]:
    return {
        "RESOLVERS": str(knot.listen),
        "PLATFORM_ZONE": "apps.test",
        "CADDY_STORAGE": str(storage),
        "DNS_TIMEOUT": "5",
        # A check that fails (it should not) is tried again soon, never given up on.
        "PENDING_FAST_INTERVAL": "0.5",
        "PENDING_SLOW_INTERVAL": "0.5",
        "RETRY_BUDGET": "3600",
        "DRIFT_INTERVAL": "3600",
        "CERT_SCAN_INTERVAL": "0.2",
        **more,
    }


def zone(names: list[str]) -> str:
    """`acme.test` records: a CNAME to the platform for every name given (`x.acme.test`)."""
    return "".join(f"{name.split('.')[0]} CNAME shop.apps.test.\n" for name in names)


def statuses(db: Path | str) -> Counter[str]:
    return Counter(dict(sql(db, "SELECT status, count(*) FROM domains GROUP BY status")))


def steps(chain: list[Move]) -> list[tuple[str | None, str]]:
    return [(move.source, move.target) for move in chain]


async def owners(db: Database, count: int) -> list[Tenant]:
    return [(await tenants.create(db, f"t{i}", time.time))[0] for i in range(count)]


async def test_kill_mid_pass(daemons: Daemons, knot_factory: Factory, tmp_path: Path) -> None:
    """Kills land while hundreds of DNS checks and certificate moves are under way; the pass
    completes after the restart with every move made exactly once."""
    count, kills = 300, 2
    rng = random.Random(f"{SEED}-pass")
    names = [f"d{i}.acme.test" for i in range(count)]
    knot = knot_factory({**PLATFORM, "acme.test": zone(names)})
    storage = tmp_path / "caddy"
    # A valid certificate for every fifth name (verified → active), one whose renewal is overdue
    # (5 of 35 days left, under a sixth) for every tenth (verified → active → expiring, two
    # moves in one transaction).
    issuer, now = make_issuer("Crash Test CA"), time.time()
    expected: dict[str, list[tuple[str | None, str]]] = {}
    for i, name in enumerate(names):
        path = [(None, "pending"), ("pending", "verified")]
        if i % 5 == 0:
            ends = now + (5 if i % 10 == 0 else 60) * DAY
            store_cert(
                storage, ISSUER_KEY, name, make_leaf_pem(issuer, [name], now - 30 * DAY, ends)
            )
            path.append(("verified", "active"))
            if i % 10 == 0:
                path.append(("active", "expiring"))
        expected[name] = path

    domaingate = daemons(
        daemon_env(knot, storage, CHECK_CONCURRENCY="20"), webhook_interval=WEBHOOK_INTERVAL
    )
    async with await open_database(db_target_of(domaingate.target)) as db:
        (tenant,) = await owners(db, 1)
        for name in names:
            await attach(db, tenant, name, time.time, first_check_in=0)

    # Kill once this many domains have moved on, each point later than the one before.
    points = sorted(rng.sample(range(count // 10, count * 9 // 10), kills))
    reconciler = domaingate.reconciler
    for point in points:
        reconciler.start()

        async def moved_on(point: int = point) -> bool:
            return count - statuses(domaingate.target)["pending"] >= point

        await await_until(moved_on, timeout=30, interval=0.005)
        kill(reconciler)
        done = count - statuses(domaingate.target)["pending"]
        assert point <= done < count, f"the kill at {point} came after the pass ({done})"

    reconciler.start()
    final = Counter(path[-1][1] for path in expected.values())

    async def completed() -> bool:
        return statuses(domaingate.target) == final

    await await_until(completed, timeout=30, interval=0.05)
    assert reconciler.stop() == 0

    chains = audit(domaingate.target)
    hostnames = dict(sql(domaingate.target, "SELECT id, hostname FROM domains"))
    assert {hostnames[i]: steps(chain) for i, chain in chains.items()} == expected


class SlowReceiver(Receiver):
    """A webhook endpoint that takes `delay` seconds over each answer and holds the arrivals
    numbered in `hold` until the test has killed the sender: those kills land mid-request."""

    def __init__(self, delay: float, hold: set[int]) -> None:
        super().__init__()
        self.delay = delay
        self.hold = hold
        self.arrivals: list[str] = []  # event ids, in the order their requests came in
        self.held: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(request.headers.get("X-Domaingate-Event-Id", ""))
        if len(self.arrivals) in self.hold:
            killed = asyncio.Event()
            await self.held.put(killed)
            await killed.wait()
        await asyncio.sleep(self.delay)
        return await super()._handle(request)


async def test_kill_mid_delivery(daemons: Daemons, knot_factory: Factory, tmp_path: Path) -> None:
    """Kills land while a webhook is in flight and DNS checks keep making events; after the last
    restart every event has reached the receiver, signed, and the outbox has marked it delivered."""
    rng = random.Random(f"{SEED}-webhooks")
    pending = [f"p{i}.acme.test" for i in range(60)]
    knot = knot_factory({**PLATFORM, "acme.test": zone(pending)})
    receiver = SlowReceiver(delay=0.02, hold=set(accumulate(rng.randint(5, 20) for _ in range(4))))
    await receiver.start()
    domaingate = daemons(
        daemon_env(knot, tmp_path / "caddy", WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET),
        webhook_interval=WEBHOOK_INTERVAL,
    )
    # Events from the start (each status reached through its moves, removed ones too), and more
    # as the pending names verify, at times spread over the first seconds.
    final: dict[str, str] = {}
    async with await open_database(db_target_of(domaingate.target)) as db:
        (tenant,) = await owners(db, 1)
        for i, status in enumerate(
            # Four of each: eight certified domains losing their certificate stay under the
            # scan's mass-loss guard (lifecycle.certificates.MASS_LOSS_MIN), so they are demoted.
            [Status.VERIFIED, Status.ACTIVE, Status.EXPIRING, Status.FAILED, Status.REMOVED] * 4
        ):
            await attach(db, tenant, f"s{i}.acme.test", time.time, status=status)
            # No certificate is stored: active and expiring ones move back to verified.
            final[f"s{i}.acme.test"] = (
                "verified" if status in {Status.ACTIVE, Status.EXPIRING} else status.value
            )
        for name in pending:
            await attach(db, tenant, name, time.time, first_check_in=rng.uniform(0, 3))
            final[name] = "verified"

    reconciler = domaingate.reconciler
    kills: list[int] = []  # the arrival that was in flight at each kill
    try:
        for _ in receiver.hold:
            reconciler.start()
            killed = await asyncio.wait_for(receiver.held.get(), timeout=30)
            kill(reconciler)
            kills.append(len(receiver.arrivals))
            killed.set()
            await asyncio.sleep(rng.uniform(0, 0.2))
        reconciler.start()

        async def settled() -> bool:
            undelivered = sql(
                domaingate.target, "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"
            )
            rows = dict(sql(domaingate.target, "SELECT hostname, status FROM domains"))
            return rows == final and undelivered == [(0,)]

        await await_until(settled, timeout=30, interval=0.05)
        assert reconciler.stop() == 0
    finally:
        await receiver.close()

    assert kills == sorted(receiver.hold)
    chains = audit(domaingate.target)
    # Each event cut off by a kill was sent again by a later process.
    for arrival in kills:
        assert receiver.arrivals[arrival - 1] in receiver.arrivals[arrival:]

    hostnames = dict(sql(domaingate.target, "SELECT id, hostname FROM domains"))
    for domain_id, chain in chains.items():
        moves = Counter(steps(chain))
        assert max(moves.values()) == 1, (hostnames[domain_id], chain)
    events = {
        event_id: (kind, source, target, reason, message, hostname)
        for event_id, kind, source, target, reason, message, hostname in sql(
            domaingate.target,
            "SELECT e.event_id, e.type, e.from_status, e.to_status, e.reason, e.message,"
            " d.hostname FROM webhook_outbox o JOIN domain_events e USING (event_id)"
            " JOIN domains d ON d.id = e.domain_id",
        )
    }
    assert sql(domaingate.target, "SELECT count(*) FROM webhook_outbox WHERE attempts < 1") == [
        (0,)
    ]
    accepted = {r.event_id: r.body for r in receiver.accepted()}
    assert all(r.signed for r in receiver.requests)
    assert accepted.keys() == events.keys()
    for event_id, body in accepted.items():
        kind, source, target, reason, message, hostname = events[event_id]
        assert body["type"] == kind
        assert body["data"] == {
            "domain": hostname,
            "tenant": "t0",
            "app": "shop",
            "status": target,
            "from_status": source,
            "reason": reason,
            "message": message,
        }
