"""Reading the gate's changes from PostgreSQL without skipping any.

A change is a `domains` row whose `seq` the trigger set. Sequence values are taken in one order
and committed in another: a transaction may take seq 9, another seq 10 and commit first, and a
reader that then moved its cursor to 10 would never read 9. So each read runs in one snapshot,
notes which transactions were still running in it (`pg_snapshot_xip`), and the next read takes
the rows past the cursor *and* every row last changed by one of those transactions. A
transaction that was not running yet took its sequence value after the snapshot, so above the
cursor: nothing can fall between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from domaingate.store.abc import AppOwner, GateRow, LoadRow
from domaingate.store.apps import GATE_SELECT, OWNERS
from domaingate.store.statuses import COUNT_BY_STATUS

CHANNEL = "domaingate_domains"
_LOAD_CHUNK = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeCursor:
    """Where a reader is: the highest seq it has read, and the transactions (xid8, as text) that
    were still running when it read, whose rows it must read again once they commit."""

    seq: int
    in_flight: tuple[str, ...]


async def _snapshot(conn: psycopg.AsyncConnection[Any]) -> tuple[str, ...]:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute("SELECT array(SELECT pg_snapshot_xip(pg_current_snapshot()))::text[]")
    row = await cursor.fetchone()
    return tuple(row[0]) if row is not None else ()


async def load(
    conn: psycopg.AsyncConnection[Any],
    statuses: Sequence[str],
    take_apps: Callable[[list[AppOwner]], object],
    take_chunk: Callable[[list[LoadRow]], object],
) -> ChangeCursor:
    """Hand every app with its owner to `take_apps`, then every domain in `statuses`, a chunk
    at a time, to `take_chunk` (`ChangeFeed.load`); all in one snapshot together with the
    cursor to follow changes from."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        in_flight = await _snapshot(conn)
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute("SELECT coalesce(max(seq), 0) FROM domains")
        row = await cursor.fetchone()
        seq = int(row[0]) if row is not None else 0
        await cursor.execute(OWNERS)
        take_apps([(str(a), int(t), u, str(n)) for a, t, u, n in await cursor.fetchall()])
        # The domains table alone, joined to the small apps table in memory by the caller:
        # joining a million rows costs the server more than the lookup costs there, and fewer
        # columns cost less to decode. A server-side cursor: a chunk at a time, never all.
        async with conn.cursor("domaingate_gate_load", row_factory=tuple_row) as named:
            await named.execute(
                "SELECT id, hostname, app, tenant_id FROM domains WHERE status = ANY(%s)",
                (list(statuses),),
            )
            while rows := await named.fetchmany(_LOAD_CHUNK):
                take_chunk(rows)
    return ChangeCursor(seq=seq, in_flight=in_flight)


def _gate_row(row: tuple[Any, ...]) -> GateRow:
    # PostgreSQL answers the "app is the tenant's" column as a boolean, SQLite as 0 or 1.
    domain_id, hostname, app, status, upstream, tenant, owned, seq = row
    return (domain_id, hostname, app, status, upstream, tenant, int(owned), int(seq))


async def read_since(
    conn: psycopg.AsyncConnection[Any], since: ChangeCursor
) -> tuple[list[GateRow], ChangeCursor]:
    """The rows changed since `since` (current state, oldest change first) and the new cursor.
    An app's change reaches its domains' rows too: 003's triggers bump their sequence."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        in_flight = await _snapshot(conn)
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(
            f"{GATE_SELECT} WHERE d.seq > %s OR d.change_xid = ANY(%s::text[]::xid8[])"
            " ORDER BY d.seq",
            (since.seq, list(since.in_flight)),
        )
        changed = [_gate_row(row) for row in await cursor.fetchall()]
    seq = max([since.seq, *(row[7] for row in changed)])
    return changed, ChangeCursor(seq=seq, in_flight=in_flight)


async def listen(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"LISTEN {CHANNEL}")


async def count_by_status(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Domains by status, for the gate's /metrics."""
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute(COUNT_BY_STATUS)
    return {str(status): int(n) for status, n in await cursor.fetchall()}


async def max_seq(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute("SELECT coalesce(max(seq), 0) FROM domains")
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0
