"""The change sequence never goes backwards under a running gate, whatever the purge deletes.

SQLite's triggers once numbered each change `max(seq) + 1`. The purge of removed domains
(`domaingate.store.retention.purge_removed`, run by the reconciler) deletes rows; when those held
the table's highest numbers, the next changes were numbered below what the gate's follower had
already read past (`seq > last`), and it never read them: a detach committed then, through the
API itself, left the name allowed at the gate until the gateway restarted. Migration 006 numbers
changes from a counter that only goes up (PostgreSQL's sequence always did).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from domaingate.store.retention import purge_removed
from tests.conftest import Api, Client, both_backends, gate_synced, set_status, sql, tls_ask


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)


async def test_a_detach_after_a_purge_of_the_latest_change_reaches_the_gate(
    api: Api, internal: Client
) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "live.acme.com")
    set_status(api.db_target, "live.acme.com", "verified")
    await gate_synced(api)
    assert await tls_ask(internal, "live.acme.com") == 200

    # Another name, removed long ago and cleaned: the latest change in the table, and the purge's
    # next victim.
    await api.attach(token, "gone.acme.com")
    sql(
        api.db_target,
        "UPDATE domains SET status = 'removed', removed_at = 1, certs_cleaned_at = 1"
        " WHERE hostname = 'gone.acme.com'",
    )
    await gate_synced(api)
    before = sql(api.db_target, "SELECT max(seq) FROM domains")[0][0]

    assert await purge_removed(api.db, before=api.clock()) == 1

    # The tenant detaches the live name; the API answers once its gate has read the change.
    reply = await api.call("DELETE", "/api/v1/domains/live.acme.com", token=token)
    assert reply.status == 204
    [(seq,)] = sql(api.db_target, "SELECT seq FROM domains WHERE hostname = 'live.acme.com'")
    assert seq > before, "the detach was numbered below a change the gate had already read"
    assert await tls_ask(internal, "live.acme.com") == 403
