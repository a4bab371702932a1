"""Domains by status as /metrics reads them (`domains.count_by_status`): from the counts 009's
triggers keep in `domain_counts`, which must agree with a count of the table after inserts,
status changes, other updates and deletes, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domaingate.store import domains
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.targets import PostgresServer
from tests.conftest import both_backends, sql, target

INSERT = (
    "INSERT INTO domains (hostname, tenant_id, app, status, kind, method, txt_token,"
    " created_at, updated_at) VALUES (?, 1, 'shop', ?, 'subdomain', 'cname', 'dg_x', 0, 0)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    return both_backends(request, tmp_path / "counts.db")


@pytest.fixture
async def db(where: Path | str) -> AsyncIterator[Database]:
    async with await open_database(target(where)) as database:
        sql(
            where,
            "INSERT INTO tenants (name, token_hash, created_at) VALUES ('acme', ?, 0)",
            (b"h",),
        )
        yield database


def counted(where: Path | str) -> dict[str, int]:
    rows = sql(where, "SELECT status, count(*) FROM domains GROUP BY status")
    return {str(status): int(n) for status, n in rows}


async def test_the_kept_counts_follow_every_kind_of_write(db: Database, where: Path | str) -> None:
    assert await domains.count_by_status(db) == {}
    for n in range(40):
        sql(where, INSERT, (f"d{n}.acme.com", "pending" if n % 3 else "active"))
    assert await domains.count_by_status(db) == counted(where) == {"pending": 26, "active": 14}
    sql(where, "UPDATE domains SET status = 'verified' WHERE id % 4 = 0")
    # A write that leaves the status as it was changes no count.
    sql(where, "UPDATE domains SET status = status, updated_at = 5 WHERE id % 5 = 0")
    sql(where, "DELETE FROM domains WHERE id % 7 = 0")
    sql(where, "UPDATE domains SET status = 'removed' WHERE id % 6 = 1")
    expected = counted(where)
    assert set(expected) == {"pending", "active", "verified", "removed"}
    assert await domains.count_by_status(db) == expected
    # A status no domain has any more is left out, as a count of the table leaves it out.
    sql(where, "DELETE FROM domains WHERE status = 'verified'")
    assert "verified" not in await domains.count_by_status(db)
    assert await domains.count_by_status(db) == counted(where)
    # Spread over slots: many rows per status, never one hot row.
    [(slots,)] = sql(where, "SELECT count(*) FROM domain_counts WHERE status = 'pending'")
    assert slots > 1


async def test_an_upgrade_to_009_counts_the_domains_already_there(where: Path | str) -> None:
    async with await open_database(target(where)):
        pass
    sql(where, "INSERT INTO tenants (name, token_hash, created_at) VALUES ('acme', ?, 0)", (b"h",))
    for n in range(30):
        sql(where, INSERT, (f"d{n}.acme.com", ("pending", "active", "removed")[n % 3]))
    # Back to schema version 8: no counts table, no triggers.
    if isinstance(target(where), PostgresServer):
        for statement in (
            "DROP FUNCTION domain_counts_keep() CASCADE",
            "DROP TABLE domain_counts",
            "DELETE FROM schema_migrations WHERE version >= 9",
        ):
            sql(where, statement)
    else:
        for op in ("insert", "update", "delete"):
            sql(where, f"DROP TRIGGER domain_counts_on_{op}")
        sql(where, "DROP TABLE domain_counts")
        sql(where, "PRAGMA user_version = 8")
    async with await open_database(target(where)) as db:
        assert await domains.count_by_status(db) == counted(where)
        assert counted(where) == {"pending": 10, "active": 10, "removed": 10}
        sql(where, INSERT, ("after.acme.com", "active"))
        assert (await domains.count_by_status(db))["active"] == 11
