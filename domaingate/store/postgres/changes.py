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

CHANNEL = "domaingate_domains"
_LOAD_CHUNK = 10_000

# (id, hostname, app, status)
ChangedRow = tuple[int, str, str, str]


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
    apply: Callable[[int, str, str, str], object],
) -> ChangeCursor:
    """Read every row in `statuses` into `apply`, a chunk at a time, in one snapshot; returns the
    cursor to follow changes from."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        in_flight = await _snapshot(conn)
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute("SELECT coalesce(max(seq), 0) FROM domains")
        row = await cursor.fetchone()
        seq = int(row[0]) if row is not None else 0
        # A server-side cursor: a million rows arrive a chunk at a time, never all at once.
        async with conn.cursor("domaingate_gate_load", row_factory=tuple_row) as named:
            await named.execute(
                "SELECT id, hostname, app, status FROM domains WHERE status = ANY(%s)",
                (list(statuses),),
            )
            while rows := await named.fetchmany(_LOAD_CHUNK):
                for domain_id, hostname, app, status in rows:
                    apply(domain_id, hostname, app, status)
    return ChangeCursor(seq=seq, in_flight=in_flight)


async def read_since(
    conn: psycopg.AsyncConnection[Any], since: ChangeCursor
) -> tuple[list[ChangedRow], ChangeCursor]:
    """The rows changed since `since` (current state, oldest change first) and the new cursor."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        in_flight = await _snapshot(conn)
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(
            "SELECT id, hostname, app, status, seq FROM domains"
            " WHERE seq > %s OR change_xid = ANY(%s::text[]::xid8[]) ORDER BY seq",
            (since.seq, list(since.in_flight)),
        )
        rows = await cursor.fetchall()
    seq = max([since.seq, *(int(row[4]) for row in rows)])
    changed = [(int(row[0]), str(row[1]), str(row[2]), str(row[3])) for row in rows]
    return changed, ChangeCursor(seq=seq, in_flight=in_flight)


async def listen(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"LISTEN {CHANNEL}")


async def max_seq(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute("SELECT coalesce(max(seq), 0) FROM domains")
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0
