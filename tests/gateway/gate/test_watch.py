"""The gate stays current with changes made by another process, within 1 s."""

from __future__ import annotations

import time

from tests.conftest import Api, Client, set_status, sql
from tests.support.wait import await_until

LIMIT = 1.0  # the spec: a change made by the reconciler reaches the gate within 1 s


async def answer(internal: Client, name: str) -> int:
    async with internal.get("/tls-ask", params={"domain": name}) as response:
        return response.status


async def time_until(internal: Client, name: str, expected: int) -> float:
    """Seconds from now until /tls-ask answers `expected` for `name` (fails past the limit)."""

    async def seen() -> bool:
        return await answer(internal, name) == expected

    started = time.monotonic()
    await await_until(seen, timeout=LIMIT, interval=0.01, what=f"{expected} for {name}")
    return time.monotonic() - started


async def test_status_changes_through_a_second_connection_reach_the_gate_within_1s(
    api: Api, internal: Client
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    assert await answer(internal, "shop.acme.com") == 403
    timings: list[tuple[str, float]] = []
    for status, expected in (
        ("verified", 200),
        ("failed", 403),
        ("pending", 403),
        ("verified", 200),
        ("active", 200),
        ("expiring", 200),
        ("failed", 403),
        ("verified", 200),
        ("removed", 403),
    ):
        started = time.monotonic()
        set_status(api.db_path, "shop.acme.com", status)
        await time_until(internal, "shop.acme.com", expected)
        timings.append((status, time.monotonic() - started))
    assert all(seconds < LIMIT for _, seconds in timings), timings


async def test_new_rows_from_another_process_reach_the_gate_within_1s(
    api: Api, internal: Client
) -> None:
    """A domain the gate has never seen, inserted already verified by another writer."""
    token = await api.tenant("acme")
    await api.attach(token, "first.acme.com")
    tenant_id = sql(api.db_path, "SELECT id FROM tenants WHERE name = 'acme'")[0][0]
    started = time.monotonic()
    sql(
        api.db_path,
        "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
        " created_at, updated_at) VALUES ('new.acme.com', ?, 'shop', 'verified', 'subdomain',"
        " 'cname', 'dg_x', 0, 0)",
        (tenant_id,),
    )
    await time_until(internal, "new.acme.com", 200)
    assert time.monotonic() - started < LIMIT


async def test_many_changes_in_one_transaction_all_arrive(api: Api, internal: Client) -> None:
    token = await api.tenant("acme")
    names = [f"d{i}.acme.com" for i in range(8)]
    for name in names:
        await api.attach(token, name)
    started = time.monotonic()
    sql(api.db_path, "UPDATE domains SET status = 'active' WHERE hostname LIKE 'd%.acme.com'")
    await time_until(internal, names[-1], 200)
    for name in names:
        assert await answer(internal, name) == 200, name
    assert time.monotonic() - started < LIMIT


async def test_changes_that_do_not_touch_the_gate_leave_it_alone(
    api: Api, internal: Client
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    set_status(api.db_path, "shop.acme.com", "verified")
    await time_until(internal, "shop.acme.com", 200)
    # The reconciler writes check results and certificate facts all the time.
    sql(
        api.db_path,
        "UPDATE domains SET last_checked_at = 1, failure_count = 3, cert_issuer = 'x'"
        " WHERE hostname = 'shop.acme.com'",
    )
    sql(api.db_path, "INSERT INTO leases (name, holder, expires_at) VALUES ('x', 'y', 0)")
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        assert await answer(internal, "shop.acme.com") == 200
