"""Properties of the claim rules and of the API's numbers, over whatever a tenant may send.

Claims: any sequence of attaches, passing checks and detaches by three tenants on two names keeps
at most one proven claim per name and one live claim per tenant and name; a proven claim keeps
the name from every other tenant; only a proven claim's removal leaves a cool-down behind.
Numbers: `limit` and `cursor` are whole numbers, range-checked after parsing: any text answers 200
or 400, never 5xx, and 200 only for a value in range.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domaingate import hostnames
from domaingate.dns.findings import CheckReport, Finding
from domaingate.errors import HostnameAlreadyRegistered, HostnameCooldownActive
from domaingate.lifecycle.claims import HOSTNAME_COOLDOWN, HOSTNAME_TAKEN
from domaingate.lifecycle.dns import CheckOutcome, Policy, plan_check
from domaingate.lifecycle.limits import COOLDOWN_SECONDS
from domaingate.models import Domain, Tenant
from domaingate.states import ALLOWED, Status
from domaingate.store import apps, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.store.checks import apply_check
from gateway.api.inputs import MAX_LIMIT, MAX_ROW_ID
from tests.conftest import Api, FakeClock, sql, target

# Hypothesis properties over many generated cases.
pytestmark = pytest.mark.slow

PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
NAMES = ("shop.acme.com", "acme.com")
TENANTS = ("acme", "globex", "initech")
PASSING = (Finding(check="cname", ok=True, code=None, message="right"),)

Op = tuple[str, int, int]  # (attach | verify | detach | wait, tenant index, name index)
OPS = st.lists(
    st.tuples(
        st.sampled_from(("attach", "verify", "detach", "wait")),
        st.integers(0, len(TENANTS) - 1),
        st.integers(0, len(NAMES) - 1),
    ),
    max_size=25,
)


@dataclass
class World:
    db: Database
    clock: FakeClock
    tenants: list[Tenant] = field(default_factory=list)


async def live(world: World, tenant: Tenant, name: str) -> Domain | None:
    try:
        return await domain_store.get(world.db, name, tenant.id)
    except LookupError:
        return None


async def step(world: World, op: Op) -> None:
    kind, t, n = op
    tenant, name, now = world.tenants[t], NAMES[n], world.clock()
    rows = sql(
        world.db.target,
        "SELECT tenant_id, status, verified_at, removed_at FROM domains WHERE hostname = ?",
        (name,),
    )
    held_by = {row[0] for row in rows if row[1] in ALLOWED}
    mine = await live(world, tenant, name)
    if kind == "attach":
        cooling = [
            row[3] + COOLDOWN_SECONDS
            for row in rows
            if row[1] == "removed" and row[2] is not None and row[0] != tenant.id
        ]
        policy = domain_store.AttachPolicy(require_txt=False, quota=100, first_check_in=60)
        host = hostnames.parse(name, ("apps.example.net",))
        try:
            await domain_store.attach(world.db, tenant, host, f"app{t}", policy, world.clock)
            outcome = "attached"
        except HostnameAlreadyRegistered:
            outcome = "taken"
        except HostnameCooldownActive:
            outcome = "cooling"
        if mine is not None or held_by - {tenant.id}:
            assert outcome == "taken", (op, rows)
        elif cooling and now < max(cooling):
            assert outcome == "cooling", (op, rows)
        else:
            assert outcome == "attached", (op, rows)
    elif kind == "verify" and mine is not None:
        report = CheckReport(hostname=name, findings=PASSING, provider=None)
        plan = plan_check(mine, report, now, Policy(), requested=True)
        written = await apply_check(world.db, CheckOutcome(domain=mine, plan=plan, now=now))
        assert written is not None
        cooling = [
            row[3] + COOLDOWN_SECONDS
            for row in rows
            if row[1] == "removed" and row[2] is not None and row[0] != tenant.id
        ]
        if mine.status in ALLOWED:
            assert written.status is mine.status
        elif held_by - {tenant.id}:
            assert written.status is Status.FAILED, (op, rows)
            assert written.last_check_code == HOSTNAME_TAKEN
        elif cooling and now < max(cooling):
            assert written.status is mine.status, (op, rows)
            assert written.last_check_code == HOSTNAME_COOLDOWN
        else:
            assert written.status is Status.VERIFIED, (op, rows)
            # Every other tenant's claim on the name lost.
            others = sql(
                world.db.target,
                "SELECT status, last_check_code FROM domains WHERE hostname = ?"
                " AND status != 'removed' AND tenant_id != ?",
                (name, tenant.id),
            )
            assert all(other == ("failed", HOSTNAME_TAKEN) for other in others), others
    elif kind == "detach" and mine is not None:
        await domain_store.remove(world.db, mine, world.clock)
    elif kind == "wait":
        world.clock.advance(COOLDOWN_SECONDS / 3)


def invariants(world: World) -> None:
    for name in NAMES:
        rows = sql(
            world.db.target,
            "SELECT tenant_id, status FROM domains WHERE hostname = ? AND status != 'removed'",
            (name,),
        )
        assert len([row for row in rows if row[1] in ALLOWED]) <= 1, rows
        owners = [row[0] for row in rows]
        assert len(owners) == len(set(owners)), rows


@PROPERTIES
@given(ops=OPS)
@example(ops=[("attach", 0, 0), ("attach", 1, 0), ("verify", 1, 0), ("verify", 0, 0)])
@example(ops=[("attach", 0, 0), ("detach", 0, 0), ("attach", 1, 0)])
@example(ops=[("attach", 0, 0), ("verify", 0, 0), ("detach", 0, 0), ("attach", 1, 0)])
async def test_claims_keep_their_rules(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op]
) -> None:
    clock = FakeClock()
    async with await open_database(target(tmp_path_factory.mktemp("claims") / "d.db")) as db:
        world = World(db, clock)
        for i, name in enumerate(TENANTS):
            tenant, _ = await tenants.create(db, name, clock)
            await apps.put(db, tenant, f"app{i}", None, clock)
            world.tenants.append(tenant)
        for op in ops:
            await step(world, op)
            invariants(world)
            clock.advance(1)


@pytest.fixture
async def token(api: Api) -> str:
    token = await api.tenant("acme")
    for i in range(3):
        await api.attach(token, f"d{i}.acme.com")
    return token


DIGITS = st.integers(min_value=0, max_value=2**80).map(str)
PADDED = st.tuples(st.integers(0, 40), DIGITS).map(lambda z: "0" * z[0] + z[1])
TEXTS = st.text(alphabet="0123456789²٣ +-.eE_", max_size=40)


@PROPERTIES
@given(text=st.one_of(DIGITS, PADDED, TEXTS))
@example(text="000499999999")
@example(text="0000099999999999999999999")
async def test_limit_answers_200_only_in_range(api: Api, token: str, text: str) -> None:
    reply = await api.call("GET", "/api/v1/domains", token=token, params={"limit": text})
    assert reply.status in (200, 400), (text, reply)
    number = int(text) if text.isascii() and text.isdigit() else None
    if reply.status == 200:
        assert number is not None and 1 <= number <= MAX_LIMIT
        assert len(reply.body["domains"]) == min(number, 3)
    elif number is not None and 1 <= number <= MAX_LIMIT:
        assert len(text) > 32, text  # in range, but more zeros in front than any client sends
    else:
        assert reply.code == "INVALID_REQUEST"


@PROPERTIES
@given(text=st.one_of(DIGITS, PADDED, TEXTS))
@example(text=str(MAX_ROW_ID))
@example(text=str(MAX_ROW_ID + 1))
async def test_cursor_answers_200_only_in_range(api: Api, token: str, text: str) -> None:
    cursor = base64.urlsafe_b64encode(f"d:{text}".encode()).decode().rstrip("=")
    reply = await api.call("GET", "/api/v1/domains", token=token, params={"cursor": cursor})
    assert reply.status in (200, 400), (text, reply)
    number = int(text) if text.isascii() and text.isdigit() else None
    if reply.status == 200:
        assert number is not None and 0 <= number <= MAX_ROW_ID
    elif number is not None and number <= MAX_ROW_ID:
        assert len(text) > 32, text
