"""Which PostgreSQL server a change feed reads, and where that server's changes have got to.

A gate's cursor (`changes.ChangeCursor`) means something only on the server it was read from.
After a failover to an asynchronous standby, the promoted server may lack the last commits the
old primary had (the gate allowed names it holds as not verified), and it numbers its next
changes below the gate's cursor (the gate would never read them). Nothing in the connection
says so: the URL is the same, the tables are the same. Two facts do:

- the server's identity: the cluster's `system_identifier` (a standby made by pg_basebackup
  shares it), the database by name and object id (a database dropped and restored from a dump
  under the same name has a new one), and the current timeline, which a promotion moves on.
  `pg_control_checkpoint()`'s timeline lags a promotion until the next checkpoint; the first
  8 hex digits of the current WAL file name are the timeline at once on a primary, and a
  standby (recovery in progress) reports the timeline it receives.
- the newest change number the server has handed out (`domains_change_seq`), which no cursor
  read from this server can be ahead of.

Both in one statement, readable by the service's own role on a primary and on a hot standby.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from domaingate.store.errors import FeedDiverged

SERVER = """
SELECT (pg_control_system()).system_identifier::text,
       current_database(),
       (SELECT oid FROM pg_database WHERE datname = current_database()),
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (pg_control_checkpoint()).timeline_id)
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM domains_change_seq)
"""


@dataclass(frozen=True, slots=True)
class ServerState:
    """A server's identity (`system/database.oid/timeline`) and its newest change number."""

    identity: str
    newest: int


async def read(conn: psycopg.AsyncConnection[Any]) -> ServerState:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute(SERVER)
    row = await cursor.fetchone()
    assert row is not None  # one row, always
    system, database, oid, timeline, newest = row
    return ServerState(identity=f"{system}/{database}.{oid}/{timeline}", newest=int(newest))


def check(state: ServerState, *, identity: str, seq: int) -> None:
    """FeedDiverged unless `state` is of the server `identity` names and not behind `seq`."""
    if state.identity != identity:
        raise FeedDiverged(
            f"another server answers (was {identity}, now {state.identity}): a failover or a "
            "restore; what the gate holds may not be this server's"
        )
    if state.newest < seq:
        raise FeedDiverged(
            f"the server's newest change is {state.newest}, behind the {seq} the gate has read: "
            "it lacks changes the gate holds"
        )
