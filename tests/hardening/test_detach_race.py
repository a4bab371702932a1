"""DELETE while another writer moves the domain: the domain is removed whatever status it has
reached, never answered 404 while it stays attached (a platform reads 404 as "already gone").

The other writer (a verify-now, a DNS check, the certificate scan) is made to commit its move
exactly between the API's read of the domain and its write, by wrapping the store's `get`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from domaingate.models import Domain
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import moves
from domaingate.store.abc import Database
from tests.conftest import Api, Client, gate_synced, set_status, sql, tls_ask

NAME = "shop.acme.com"
PATH = f"/api/v1/domains/{NAME}"


def move_after_read(
    monkeypatch: pytest.MonkeyPatch, api: Api, move: Callable[[Domain], Awaitable[None]]
) -> None:
    """The next `get` of the store returns the domain as read, after `move` has committed."""
    original = domain_store.get

    async def get(db: Database, hostname: str, tenant_id: int | None) -> Domain:
        domain = await original(db, hostname, tenant_id)
        monkeypatch.setattr(domain_store, "get", original)  # only this once
        await move(domain)
        return domain

    monkeypatch.setattr(domain_store, "get", get)


def moves_of(api: Api) -> list[tuple[str, str | None, str]]:
    return [
        (str(row[0]), row[1], str(row[2]))
        for row in sql(
            api.db_target,
            "SELECT e.type, e.from_status, e.to_status FROM domain_events e"
            " JOIN domains d ON d.id = e.domain_id WHERE d.hostname = ? ORDER BY e.id",
            (NAME,),
        )
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Status.PENDING, Status.VERIFIED),  # verify-now or a DNS check proves it
        (Status.PENDING, Status.FAILED),  # its retry budget ends
        (Status.VERIFIED, Status.ACTIVE),  # the certificate scan finds its certificate
    ],
    ids=lambda status: str(status),
)
async def test_delete_removes_a_domain_moved_meanwhile(
    api: Api, internal: Client, monkeypatch: pytest.MonkeyPatch, before: Status, after: Status
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, NAME)
    if before is not Status.PENDING:
        set_status(api.db_target, NAME, before.value)

    async def other_writer(domain: Domain) -> None:
        assert domain.status is before
        async with api.db.write() as conn:
            moved = await moves.transition(
                conn, domain, after, reason=None, message="moved meanwhile", now=api.clock()
            )
        assert moved

    move_after_read(monkeypatch, api, other_writer)
    reply = await api.call("DELETE", PATH, token=token)
    assert (reply.status, reply.code) == (204, None), reply
    # Gone: not shown, not listed, not allowed; a second DELETE is the "already gone" 404.
    assert (await api.call("GET", PATH, token=token)).status == 404
    again = await api.call("DELETE", PATH, token=token)
    assert (again.status, again.code) == (404, "DOMAIN_NOT_FOUND")
    assert sql(api.db_target, "SELECT status FROM domains WHERE hostname = ?", (NAME,)) == [
        ("removed",)
    ]
    # The removal is recorded from the status the domain had when it was removed.
    assert moves_of(api)[-2:] == [
        (f"domain.{after}", before.value, after.value),
        ("domain.removed", after.value, "removed"),
    ]
    await gate_synced(api)
    assert await tls_ask(internal, NAME) == 403


async def test_delete_of_a_domain_removed_meanwhile_is_404(
    api: Api, internal: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, NAME)

    async def other_delete(domain: Domain) -> None:
        await domain_store.remove(api.db, domain, api.clock)

    move_after_read(monkeypatch, api, other_delete)
    reply = await api.call("DELETE", PATH, token=token)
    assert (reply.status, reply.code) == (404, "DOMAIN_NOT_FOUND")
    # Removed once, with one event.
    assert [move for move in moves_of(api) if move[0] == "domain.removed"] == [
        ("domain.removed", "pending", "removed")
    ]
    await gate_synced(api)
    assert await tls_ask(internal, NAME) == 403
