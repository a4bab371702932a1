"""The one place a backend is chosen, by the type of settings.db's target: a SQLite file or a
PostgreSQL server,
both for the database and for the gate's change feed.

Each backend is imported only when it is opened, so a SQLite deployment never loads psycopg.
"""

from __future__ import annotations

from domaingate.store.abc import ChangeFeed, Database, ErrorHook
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile


async def open_database(
    target: DatabaseTarget, *, on_error: ErrorHook | None = None, role: str = "store"
) -> Database:
    """Open (and migrate) the database settings.db names; `role` names its connections
    (PostgreSQL's `application_name`)."""
    match target:
        case SqliteFile(path):
            from domaingate.store.sqlite.database import SqliteDatabase

            return await SqliteDatabase.open(path, on_error=on_error)
        case PostgresServer(url):
            from domaingate.store.postgres.database import PostgresDatabase

            return await PostgresDatabase.connect(url, on_error=on_error, role=role)


def feed_for(target: DatabaseTarget, *, read: PostgresServer | None = None) -> ChangeFeed:
    """The gate's change feed of the database settings.db names (opened by its first read);
    from `read` (settings.db_read, a hot standby of it) if given."""
    match target:
        case SqliteFile(path):
            from domaingate.store.sqlite.feed import SqliteFeed

            return SqliteFeed(path)
        case PostgresServer(url):
            from domaingate.store.postgres.feed import PostgresFeed

            if read is not None:
                return PostgresFeed(read.url, primary=url)
            return PostgresFeed(url)
