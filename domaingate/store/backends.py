"""The one place a backend is chosen, by the type of settings.db's target: a SQLite file or a
PostgreSQL server,
both for the database and for the gate's change feed.

Each backend is imported only when it is opened, so a SQLite deployment never loads psycopg.
"""

from __future__ import annotations

from domaingate.store.abc import ChangeFeed, Database, ErrorHook
from domaingate.targets import DatabaseTarget, PostgresServer, SqliteFile


async def open_database(target: DatabaseTarget, *, on_error: ErrorHook | None = None) -> Database:
    """Open (and migrate) the database settings.db names."""
    match target:
        case SqliteFile(path):
            from domaingate.store.sqlite.database import SqliteDatabase

            return await SqliteDatabase.open(path, on_error=on_error)
        case PostgresServer(url):
            from domaingate.store.postgres.database import PostgresDatabase

            return await PostgresDatabase.connect(url, on_error=on_error)


def feed_for(target: DatabaseTarget) -> ChangeFeed:
    """The gate's change feed of the database settings.db names (opened by its first read)."""
    match target:
        case SqliteFile(path):
            from domaingate.store.sqlite.feed import SqliteFeed

            return SqliteFeed(path)
        case PostgresServer(url):
            from domaingate.store.postgres.feed import PostgresFeed

            return PostgresFeed(url)
