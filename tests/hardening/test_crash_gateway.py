"""The gateway killed with SIGKILL while ~1,000 attaches and deletes are in flight, then restarted.

Every request answered 2xx holds exactly as answered (a 201's row, a 204's removal); a request left
unanswered may or may not have happened, but leaves no half-state (`crashes.audit`); the restarted
gateway's API and gate agree with the rows. Each round draws its requests and the moment of the
kill from a seeded generator and runs on what the rounds before it left. And a client's next
request sees what its answered one committed, however many other reads are under way.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import pytest

from domaingate.states import ALLOWED, Status
from domaingate.store import apps, tenants
from domaingate.store.backends import open_database
from tests.conftest import PLATFORM_ZONE, Api, bearer, sql, target
from tests.hardening.crashes import WEBHOOK_INTERVAL, audit, daemons, kill
from tests.reconciler.conftest import attach
from tests.support.domaingate import Daemons, Domaingate
from tests.support.process import Process

__all__ = ["daemons"]  # both backends (tests.hardening.crashes), re-exported for pytest

# Real daemons, killed and restarted.
pytestmark = pytest.mark.slow

SEED = 63
ROUNDS = 3
TENANTS = ("alpha", "bravo", "charlie", "delta")
APPS = ("web", "shop", "api")  # each tenant's own: `web-alpha`, … (app names are unique)
SEEDED = (Status.PENDING, Status.VERIFIED, Status.ACTIVE, Status.EXPIRING, Status.FAILED)
SEEDED_PER_TENANT = 25
NEW_PER_ROUND = 640
CONTESTED_PER_ROUND = 30
FOREIGN_PER_ROUND = 40
MAX_DELETES = 200
# The SIGKILL comes this many answers into a round, and then up to KILL_DELAY seconds later.
KILL_AFTER = (250, 450)
KILL_DELAY = 0.02
ENV = {
    "MAX_DOMAINS_PER_TENANT": "100000",  # the quota is not what this tests
    "ATTACH_RATE_LIMIT": "100000",  # nor the attach rate
    "PLATFORM_ZONE": PLATFORM_ZONE,
    "RESOLVERS": "127.0.0.1:9",
    "LOG_LEVEL": "WARNING",
}
CLAIMED = frozenset({"HOSTNAME_ALREADY_REGISTERED", "HOSTNAME_COOLDOWN_ACTIVE"})

Answer = tuple[int, Any]


def app_of(tenant: str, app: str) -> str:
    return f"{app}-{tenant}"


@dataclass(slots=True)
class Row:
    """What the test knows of one domain row. Its txt token (32 random bytes) names the row: the
    domain object carries no row id."""

    token: str
    hostname: str
    tenant: str
    app: str
    statuses: set[str]  # what the row may be now
    body: dict[str, Any] | None = None  # the 201 that created it, for rows made through the API

    @property
    def live(self) -> bool:
        return "removed" not in self.statuses


@dataclass(slots=True)
class Storm:
    """One round's requests to one gateway process, killed `kill_delay` s after the `kill_at`-th
    answer: at some point of the gateway's work, not just as it has sent an answer."""

    session: aiohttp.ClientSession
    base: str
    tokens: dict[str, str]
    gateway: Process
    kill_at: int
    kill_delay: float
    ledger: dict[str, Row]
    killer: asyncio.Task[None] | None = None
    answered: int = 0
    unanswered: int = 0
    unexpected: list[tuple[str, Answer]] = field(default_factory=list)
    # (tenant, hostname) of every attach that got no answer: it may have happened.
    maybe_attached: set[tuple[str, str]] = field(default_factory=set)

    async def call(self, method: str, path: str, tenant: str, body: Any = None) -> Answer | None:
        try:
            async with self.session.request(
                method, self.base + path, json=body, headers=bearer(self.tokens[tenant])
            ) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            self.unanswered += 1
            return None
        self.answered += 1
        if self.answered == self.kill_at:
            self.killer = asyncio.create_task(self._kill())
        return response.status, json.loads(raw) if raw else None

    async def _kill(self) -> None:
        await asyncio.sleep(self.kill_delay)
        kill(self.gateway)

    def expect(
        self, what: str, answer: Answer, status: int, codes: frozenset[str] = CLAIMED
    ) -> bool:
        """Whether `answer` is `status`, else noted as unexpected. Error codes must be `codes`."""
        got, body = answer
        error = body.get("error", {}).get("code") if isinstance(body, dict) else None
        if got != status or (got >= 400 and error not in codes):
            self.unexpected.append((what, answer))
            return False
        return True

    async def attach(
        self, tenant: str, hostname: str, app: str, *, wins: bool = True
    ) -> Row | None:
        """Attach; a 201 joins the ledger. `wins`: nobody else claims the name, else 409 is fine."""
        answer = await self.call("POST", "/domains", tenant, {"domain": hostname, "app": app})
        if answer is None:
            self.maybe_attached.add((tenant, hostname))
            return None
        if answer[0] == 409 and not wins:
            self.expect(f"attach {hostname} by {tenant}", answer, 409)
            return None
        if not self.expect(f"attach {hostname} by {tenant}", answer, 201):
            return None
        body = answer[1]
        row = Row(body["txt_record"]["value"], hostname, tenant, app, {"pending"}, body)
        assert (body["domain"], body["tenant"], body["app"]) == (hostname, tenant, app)
        assert row.token not in self.ledger
        self.ledger[row.token] = row
        return row

    async def detach(self, row: Row) -> bool:
        """Delete a live row as its owner; True on 204."""
        answer = await self.call("DELETE", f"/domains/{row.hostname}", row.tenant)
        if answer is None:
            row.statuses.add("removed")  # it may have happened
            return False
        if not self.expect(f"delete {row.hostname}", answer, 204):
            return False
        row.statuses = {"removed"}
        return True

    async def attach_then_detach(self, tenant: str, hostname: str, app: str) -> None:
        row = await self.attach(tenant, hostname, app)
        if row is not None:
            await self.detach(row)

    async def detach_then_reattach(self, row: Row, app: str) -> None:
        # Free again at once to its old tenant.
        if await self.detach(row):
            await self.attach(row.tenant, row.hostname, app)

    async def foreign_detach(self, row: Row, tenant: str) -> None:
        answer = await self.call("DELETE", f"/domains/{row.hostname}", tenant)
        if answer is not None:
            self.expect(
                f"delete {row.hostname} by {tenant}", answer, 404, frozenset({"DOMAIN_NOT_FOUND"})
            )

    async def foreign_attach(self, row: Row, tenant: str) -> None:
        # A held name (its cool-down, if its holder detaches it meanwhile): 409, with an app of
        # the tenant's own.
        body = {"domain": row.hostname, "app": app_of(tenant, "web")}
        answer = await self.call("POST", "/domains", tenant, body)
        if answer is not None:
            self.expect(f"attach {row.hostname} by {tenant}", answer, 409)


def plan(storm: Storm, rng: random.Random, round_: int) -> list[Callable[[], Awaitable[Any]]]:
    """The round's requests, shuffled: deletes of live rows (some re-attached at once), new
    attaches (some deleted at once), names two tenants race for, and requests by a tenant that
    does not own the name."""
    live = sorted((row for row in storm.ledger.values() if row.live), key=lambda r: r.token)
    rng.shuffle(live)
    deletes = live[: min(len(live) // 2, MAX_DELETES)]
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for i, row in enumerate(deletes):
        if i % 3 == 0:
            jobs.append(
                partial(storm.detach_then_reattach, row, app_of(row.tenant, rng.choice(APPS)))
            )
        else:
            jobs.append(partial(storm.detach, row))
    claims = {(row.tenant, row.hostname) for row in live}
    for row in rng.sample(live, min(FOREIGN_PER_ROUND, len(live))):
        # A tenant with no claim of its own on the name (several tenants may claim one).
        others = [t for t in TENANTS if (t, row.hostname) not in claims]
        if not others:
            continue
        other = rng.choice(others)
        jobs.append(partial(storm.foreign_detach, row, other))
        if row.statuses <= set(ALLOWED):
            # Only a proven claim holds the name against others.
            jobs.append(partial(storm.foreign_attach, row, other))
    for i in range(NEW_PER_ROUND):
        tenant = rng.choice(TENANTS)
        app = app_of(tenant, rng.choice(APPS))
        # One in ten is an apex name (TXT method), the rest subdomains (CNAME method).
        name = f"{tenant}{round_}x{i}.test" if i % 10 == 0 else f"n{i}.r{round_}.{tenant}.test"
        chained = rng.random() < 0.15
        jobs.append(
            partial(storm.attach_then_detach if chained else storm.attach, tenant, name, app)
        )
    for i in range(CONTESTED_PER_ROUND):
        name = f"race{i}.r{round_}.contested.test"
        for tenant in rng.sample(TENANTS, 2):
            jobs.append(partial(storm.attach, tenant, name, app_of(tenant, "web"), wins=False))
    rng.shuffle(jobs)
    return jobs


async def seed(daemons: Domaingate) -> tuple[dict[str, str], dict[str, Row]]:
    """Tenants and domains in every live status, written through the store before the gateway
    starts; returns the tenants' tokens and the ledger."""
    tokens: dict[str, str] = {}
    ledger: dict[str, Row] = {}
    async with await open_database(target(daemons.target)) as db:
        for name in TENANTS:
            tenant, tokens[name] = await tenants.create(db, name, time.time)
            for app in APPS:
                await apps.put(db, tenant, app_of(name, app), None, time.time)
            shop = app_of(name, "shop")
            for i in range(SEEDED_PER_TENANT):
                status = SEEDED[i % len(SEEDED)]
                hostname = f"seed{i}.{name}.test"
                domain = await attach(db, tenant, hostname, time.time, status=status, app=shop)
                ledger[domain.txt_token] = Row(
                    domain.txt_token, hostname, name, shop, {status.value}
                )
    return tokens, ledger


async def check(daemons: Domaingate, storm: Storm) -> None:
    """After the restart: the rows against the ledger, then the API and the gate against both.
    Settles the ledger on what the rows say, for the next round."""
    ledger = storm.ledger
    chains = audit(daemons.target)
    rows = {
        token: (domain_id, hostname, tenant, app, status)
        for domain_id, hostname, tenant, app, status, token in sql(
            daemons.target,
            "SELECT d.id, d.hostname, t.name, d.app, d.status, d.txt_token"
            " FROM domains d JOIN tenants t ON t.id = d.tenant_id",
        )
    }
    for row in ledger.values():
        assert row.token in rows, f"{row.hostname} ({row.tenant}): its row is gone"
        _id, hostname, tenant, app, status = rows[row.token]
        assert (hostname, tenant, app) == (row.hostname, row.tenant, row.app)
        assert status in row.statuses, (row.hostname, status, row.statuses)
        row.statuses = {status}
    for token in rows.keys() - ledger.keys():
        # An attach that committed but whose answer the kill cut off: whole, and nothing more.
        domain_id, hostname, tenant, app, status = rows[token]
        assert (tenant, hostname) in storm.maybe_attached, f"{hostname}: a row nobody asked for"
        assert status == "pending", (hostname, status)
        assert [move.type for move in chains[domain_id]] == ["domain.created"]
        ledger[token] = Row(token, hostname, tenant, app, {status})

    base = storm.base
    session = storm.session

    async def shown(row: Row) -> None:
        async with session.get(
            f"{base}/domains/{row.hostname}", headers=bearer(storm.tokens[row.tenant])
        ) as response:
            assert response.status == 200, row.hostname
            body = await response.json()
        assert body["status"] in row.statuses and body["app"] == row.app
        assert body["txt_record"]["value"] == row.token
        if row.body is not None:
            del body["now"]
            assert body == {k: v for k, v in row.body.items() if k != "now"}

    internal = f"http://{daemons.internal}/tls-ask"
    allowed = {row.hostname for row in ledger.values() if row.statuses <= set(ALLOWED)}

    async def gate(hostname: str) -> None:
        async with session.get(internal, params={"domain": hostname}) as response:
            assert response.status == (200 if hostname in allowed else 403), hostname

    await asyncio.gather(*(shown(row) for row in ledger.values() if row.live))
    await asyncio.gather(*(gate(hostname) for hostname in {r.hostname for r in ledger.values()}))


async def test_kill_under_concurrent_attaches_and_deletes(daemons: Daemons) -> None:
    domaingate = daemons(ENV, webhook_interval=WEBHOOK_INTERVAL)
    tokens, ledger = await seed(domaingate)
    domaingate.start_gateway()
    connector = aiohttp.TCPConnector(limit=2000)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for round_ in range(ROUNDS):
            rng = random.Random(f"{SEED}-{round_}")
            storm = Storm(
                session,
                f"http://{domaingate.api_listen}/api/v1",
                tokens,
                domaingate.gateway,
                rng.randint(*KILL_AFTER),
                rng.uniform(0, KILL_DELAY),
                ledger,
            )
            jobs = plan(storm, rng, round_)
            await asyncio.gather(*(job() for job in jobs))
            assert storm.killer is not None
            await storm.killer
            assert storm.unexpected == []
            # The kill landed with requests still in flight, and it was the kill that ended them.
            assert storm.answered >= storm.kill_at and storm.unanswered > 0
            assert not domaingate.gateway.running
            domaingate.start_gateway()
            await check(domaingate, storm)


async def test_an_answered_attach_is_seen_by_the_next_request(api: Api) -> None:
    """Under the storm above, a client once got a 201 and then a 404 for its next request.

    Another request's read is still under way (here, held open) when the attach commits: the next
    request must see the new domain, not the snapshot that read began with.
    """
    token = await api.tenant("alpha")
    await api.tenant("bravo")
    reading = asyncio.Event()

    async def other_request() -> None:
        # Listing the tenants, one row read of two so far.
        async with api.db.reader.execute("SELECT * FROM tenants") as cursor:
            await cursor.fetchone()
            reading.set()
            await asyncio.sleep(0.2)

    other = asyncio.create_task(other_request())
    await reading.wait()
    await api.attach(token, "shop.alpha.test")
    reply = await api.call("GET", "/api/v1/domains/shop.alpha.test", token=token)
    assert reply.status == 200, reply
    deleted = await api.call("DELETE", "/api/v1/domains/shop.alpha.test", token=token)
    assert deleted.status == 204, deleted
    await other
