"""Abuse under concurrency: the verify rate limits, racing claims of one hostname, the 48 h
cool-down and the quota, within one gateway and across two gateway processes on one database,
SQLite and PostgreSQL alike.

Every limit is counted inside one write transaction, so it must hold however the requests
interleave: within a process (one writer connection, requests interleaving at every await),
between two apps in one process (two writer connections, or pools) and between two
`python -m domaingate serve` processes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import pytest

from domaingate.lifecycle.limits import (
    COOLDOWN_SECONDS,
    VERIFY_LIMIT_PER_DOMAIN,
    VERIFY_LIMIT_PER_TENANT,
    VERIFY_WINDOW_SECONDS,
)
from domaingate.store import apps, tenants
from domaingate.store.backends import open_database
from tests.conftest import Api, ApiFactory, Reply, both_backends, sql, target
from tests.support.domaingate import Domaingate
from tests.support.postgres import Cluster

# A verify against nothing listening costs its 50 ms DNS budget, not the default seconds.
FAST_DNS = {"DNS_TIMEOUT": "0.05", "RESOLVERS": "127.0.0.1:9"}
REQUESTS = 20


class Answer(Protocol):
    """A reply from the in-process test client or from a gateway process."""

    @property
    def status(self) -> int: ...
    @property
    def body(self) -> Any: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


def code(answer: Answer) -> str | None:
    if isinstance(answer.body, dict) and isinstance(answer.body.get("error"), dict):
        found = answer.body["error"].get("code")
        return found if isinstance(found, str) else None
    return None


def outcomes(answers: Sequence[Answer]) -> Counter[tuple[int, str | None]]:
    return Counter((answer.status, code(answer)) for answer in answers)


def assert_limited(answers: Sequence[Answer], *, allowed: int, scope: str) -> list[int]:
    """Exactly `allowed` verifications ran; every other one was refused with a Retry-After that
    agrees with the body. Returns the Retry-After values."""
    assert outcomes(answers) == {
        (200, None): allowed,
        (429, "VERIFY_RATE_LIMITED"): len(answers) - allowed,
    }
    waits = []
    for answer in answers:
        if answer.status == 429:
            assert scope in answer.body["error"]["message"]
            wait = int(answer.headers["Retry-After"])
            assert wait == answer.body["error"]["retry_after"]
            assert 1 <= wait <= VERIFY_WINDOW_SECONDS
            waits.append(wait)
    return waits


def prove(db: Path | str, hostname: str) -> None:
    """Mark the live claim on `hostname` verified, as a passing check does."""
    sql(
        db,
        "UPDATE domains SET status = 'verified', verified_at = ? WHERE hostname = ?"
        " AND status != 'removed'",
        (time.time(), hostname),
    )


def live_rows(db: Path | str, hostname: str) -> list[tuple[Any, ...]]:
    return sql(
        db, "SELECT tenant_id FROM domains WHERE hostname = ? AND status != 'removed'", (hostname,)
    )


def assert_won_by(answers: Sequence[Answer], tenant: str) -> None:
    """One attach of a contested name succeeded, `tenant`'s; every other was refused."""
    assert [answer.body["tenant"] for answer in answers if answer.status == 201] == [tenant]
    assert {(answer.status, code(answer)) for answer in answers if answer.status != 201} <= {
        (409, "HOSTNAME_COOLDOWN_ACTIVE"),
        (409, "HOSTNAME_ALREADY_REGISTERED"),
    }


def spellings(hostname: str) -> Iterator[str]:
    """The same name as different clients may send it; all normalise to `hostname`."""
    while True:
        yield hostname
        yield hostname.upper()
        yield f" {hostname}."


# --- one process ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory(dns_timeout=0.05)


@pytest.fixture
async def twin(api_factory: ApiFactory) -> Api:
    """A second app on the same database file and clock: another writer connection."""
    return await api_factory(dns_timeout=0.05)


async def verify(api: Api, token: str, name: str) -> Reply:
    return await api.call("POST", f"/api/v1/domains/{name}/verify", token=token)


async def test_concurrent_verifies_of_one_domain_let_exactly_five_through(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    replies = await asyncio.gather(*(verify(api, token, "shop.acme.com") for _ in range(REQUESTS)))
    waits = assert_limited(replies, allowed=VERIFY_LIMIT_PER_DOMAIN, scope="domain")
    # The clock stood still: the oldest counted attempt leaves the window a full hour from now.
    assert set(waits) == {VERIFY_WINDOW_SECONDS}
    assert sql(api.db_target, "SELECT count(*) FROM verify_attempts") == [
        (VERIFY_LIMIT_PER_DOMAIN,)
    ]


async def test_concurrent_verifies_across_domains_let_exactly_ten_through(api: Api) -> None:
    token = await api.tenant("acme")
    names = [f"d{i}.acme.com" for i in range(REQUESTS // 2)]
    for name in names:
        await api.attach(token, name)
    # Two per domain: only the tenant's limit can bind.
    replies = await asyncio.gather(*(verify(api, token, name) for name in names * 2))
    assert_limited(replies, allowed=VERIFY_LIMIT_PER_TENANT, scope="tenant")
    assert sql(api.db_target, "SELECT count(*) FROM verify_attempts") == [
        (VERIFY_LIMIT_PER_TENANT,)
    ]


async def test_racing_claims_of_a_hostname_make_one_per_tenant(api: Api, twin: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    for token in (acme, globex):
        await api.register_if_free(token, await api.default_app(token))
    twin.tenants.update(api.tenants)
    names = [f"race{i}.example.org" for i in range(8)]
    # Each name six times at once: both tenants, both apps, three spellings.
    attempts = [
        (name, app.post_domain(token, spelled))
        for name in names
        for (app, token), spelled in zip(
            [(api, acme), (twin, globex), (api, globex), (twin, acme), (api, acme), (twin, globex)],
            spellings(name),
            strict=False,
        )
    ]
    replies = await asyncio.gather(*(call for _, call in attempts))
    by_name: dict[str, list[Reply]] = {}
    for (name, _), reply in zip(attempts, replies, strict=True):
        by_name.setdefault(name, []).append(reply)
    for name in names:
        assert outcomes(by_name[name]) == {(201, None): 2, (409, "HOSTNAME_ALREADY_REGISTERED"): 4}
        assert len({row[0] for row in live_rows(api.db_target, name)}) == 2


async def claim_race(api: Api, twin: Api, tokens: Sequence[str], name: str) -> list[Reply]:
    """Attach `name` with each token, once through each app, all at once."""
    calls = [api.post_domain(token, name) for token in tokens]
    calls += [twin.post_domain(token, name.upper()) for token in tokens]
    return list(await asyncio.gather(*calls))


async def test_cooldown_holds_while_racing(api: Api, twin: Api) -> None:
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    name = "shop.acme.com"
    twin.tenants.update(api.tenants)
    await api.attach(acme, name)
    prove(api.db_target, name)
    removed_at = api.clock.now
    assert (await api.call("DELETE", f"/api/v1/domains/{name}", token=acme)).status == 204

    # At once, the old tenant wins every race for it.
    replies = await claim_race(api, twin, [globex, acme, globex, acme], name)
    assert_won_by(replies, "acme")
    assert len(live_rows(api.db_target, name)) == 1
    assert (await api.call("DELETE", f"/api/v1/domains/{name}", token=acme)).status == 204

    # Any other tenant is kept out, however many try at once, until the last second.
    for left in (COOLDOWN_SECONDS, 1):
        api.clock.now = removed_at + COOLDOWN_SECONDS - left  # the clock of both apps
        replies = await claim_race(api, twin, [globex] * 3, name)
        assert outcomes(replies) == {(409, "HOSTNAME_COOLDOWN_ACTIVE"): 6}
        for reply in replies:
            assert reply.body["error"]["retry_after"] == left
            assert reply.headers["Retry-After"] == str(left)
    assert live_rows(api.db_target, name) == []

    # 48 h after the latest removal of a proven claim each tenant may claim it, once.
    api.clock.now = removed_at + COOLDOWN_SECONDS
    replies = await claim_race(api, twin, [globex, acme, globex, acme], name)
    assert outcomes(replies) == {(201, None): 2, (409, "HOSTNAME_ALREADY_REGISTERED"): 6}
    assert len({row[0] for row in live_rows(api.db_target, name)}) == 2


# --- two processes ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateways(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Domaingate]]:
    """Two `python -m domaingate serve` processes on one database (a file, or a PostgreSQL
    database of the session's cluster)."""
    db: Path | str = tmp_path_factory.mktemp("shared") / "domaingate.db"
    cluster: Cluster | None = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        assert cluster is not None
        db = cluster.database()
    started: list[Domaingate] = []
    try:
        for name in ("one", "two"):
            gateway = Domaingate(
                tmp_path_factory.mktemp(name), {"DB": str(db), "LOG_LEVEL": "WARNING", **FAST_DNS}
            )
            started.append(gateway)
            gateway.start_gateway()
        yield started
    finally:
        for gateway in started:
            gateway.stop()
        if cluster is not None and isinstance(db, str):
            cluster.drop(db)


# Each tenant's app, by its token: the tenant's own name (app names are unique across tenants).
APP_OF: dict[str, str] = {}


def make_tenants(gateways: Sequence[Domaingate], *names: str) -> list[str]:
    """Tenants created straight in the database the gateways share, each with an app named
    after it (as the platform registers them); returns their tokens."""

    async def create() -> list[str]:
        tokens = []
        async with await open_database(target(gateways[0].target)) as db:
            for name in names:
                tenant, token = await tenants.create(db, name, time.time)
                await apps.put(db, tenant, name, None, time.time)
                APP_OF[token] = name
                tokens.append(token)
        return tokens

    return asyncio.run(create())


def race(calls: Sequence[Callable[[], Answer]]) -> list[Answer]:
    """Run every call in its own thread, all released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Answer]) -> Answer:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def request(
    gateway: Domaingate, method: str, path: str, token: str, body: Any = None
) -> Callable[[], Answer]:
    return lambda: gateway.api(method, path, token=token, body=body)


def attached(gateway: Domaingate, token: str, *names: str) -> None:
    for name in names:
        assert (
            gateway.api(
                "POST", "/domains", token=token, body={"domain": name, "app": APP_OF[token]}
            ).status
            == 201
        )


@pytest.mark.slow
def test_verify_limits_hold_across_two_processes(gateways: list[Domaingate]) -> None:
    one, many = make_tenants(gateways, "verify-one", "verify-many")
    attached(gateways[0], one, "one.verify.example.org")
    names = [f"d{i}.verify.example.org" for i in range(VERIFY_LIMIT_PER_TENANT)]
    attached(gateways[1], many, *names)

    answers = race(
        [
            request(gateways[i % 2], "POST", "/domains/one.verify.example.org/verify", one)
            for i in range(REQUESTS)
        ]
    )
    assert_limited(answers, allowed=VERIFY_LIMIT_PER_DOMAIN, scope="domain")
    counted = (
        "SELECT count(*) FROM verify_attempts a JOIN tenants t ON t.id = a.tenant_id"
        " WHERE t.name = ?"
    )
    assert sql(gateways[0].target, counted, ("verify-one",)) == [(VERIFY_LIMIT_PER_DOMAIN,)]

    answers = race(
        [
            request(gateways[i % 2], "POST", f"/domains/{name}/verify", many)
            for i, name in enumerate(names * 2)
        ]
    )
    assert_limited(answers, allowed=VERIFY_LIMIT_PER_TENANT, scope="tenant")
    assert sql(gateways[0].target, counted, ("verify-many",)) == [(VERIFY_LIMIT_PER_TENANT,)]


@pytest.mark.slow
def test_racing_claims_across_two_processes_make_one_per_tenant(
    gateways: list[Domaingate],
) -> None:
    acme, globex = make_tenants(gateways, "claims-acme", "claims-globex")
    names = [f"race{i}.claims.example.org" for i in range(8)]
    calls = [
        request(
            gateways[i % 2],
            "POST",
            "/domains",
            (acme, globex)[i // 2 % 2],
            {"domain": spelled, "app": APP_OF[(acme, globex)[i // 2 % 2]]},
        )
        for name in names
        for i, spelled in zip(range(6), spellings(name), strict=False)
    ]
    answers = race(calls)
    for n, name in enumerate(names):
        mine = answers[n * 6 : n * 6 + 6]
        # Unproven claims hold nobody back: one claim per tenant, never two for one tenant.
        assert outcomes(mine) == {(201, None): 2, (409, "HOSTNAME_ALREADY_REGISTERED"): 4}
        assert len({row[0] for row in live_rows(gateways[0].target, name)}) == 2


@pytest.mark.slow
def test_cooldown_holds_across_two_processes(gateways: list[Domaingate]) -> None:
    acme, globex = make_tenants(gateways, "cool-acme", "cool-globex")
    name = "shop.cool.example.org"
    attached(gateways[0], acme, name)
    prove(gateways[0].target, name)
    assert gateways[1].api("DELETE", f"/domains/{name}", token=acme).status == 204

    def body(token: str) -> dict[str, str]:
        return {"domain": name, "app": APP_OF[token]}

    answers = race(
        [request(gateways[i % 2], "POST", "/domains", globex, body(globex)) for i in range(6)]
    )
    assert outcomes(answers) == {(409, "HOSTNAME_COOLDOWN_ACTIVE"): 6}
    for answer in answers:
        wait = answer.body["error"]["retry_after"]
        assert COOLDOWN_SECONDS - 5 <= wait <= COOLDOWN_SECONDS
        assert answer.headers["Retry-After"] == str(wait)

    answers = race(
        [
            request(gateways[i % 2], "POST", "/domains", token, body(token))
            for i, token in ((i, (globex, acme)[i // 2 % 2]) for i in range(8))
        ]
    )
    assert_won_by(answers, "cool-acme")
    assert len(live_rows(gateways[0].target, name)) == 1


@pytest.mark.slow
def test_quota_holds_across_two_processes(gateways: list[Domaingate]) -> None:
    (token,) = make_tenants(gateways, "quota")
    quota = 10  # the default MAX_DOMAINS_PER_TENANT
    answers = race(
        [
            request(
                gateways[i % 2],
                "POST",
                "/domains",
                token,
                {"domain": f"q{i}.quota.example.org", "app": APP_OF[token]},
            )
            for i in range(REQUESTS)
        ]
    )
    assert outcomes(answers) == {(201, None): quota, (422, "QUOTA_EXCEEDED"): REQUESTS - quota}
    live = sql(
        gateways[0].target,
        "SELECT count(*) FROM domains d JOIN tenants t ON t.id = d.tenant_id"
        " WHERE t.name = 'quota' AND d.status != 'removed'",
    )
    assert live == [(quota,)]
