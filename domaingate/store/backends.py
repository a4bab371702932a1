"""The one place a backend is chosen: settings.db's file path opens SQLite, a URL PostgreSQL,
both for the database and for the gate's change feed.

Each backend is imported only when it is opened, so a SQLite deployment never loads psycopg.
"""

from __future__ import annotations

from pathlib import Path

from domaingate.store.abc import ChangeFeed, Database, ErrorHook


async def open_database(target: Path | str, *, on_error: ErrorHook | None = None) -> Database:
    """Open (and migrate) the database settings.db names: a SQLite file path, or a
    PostgreSQL URL."""
    if isinstance(target, Path):
        from domaingate.store.sqlite.database import SqliteDatabase

        return await SqliteDatabase.open(target, on_error=on_error)
    from domaingate.store.postgres.database import PostgresDatabase

    return await PostgresDatabase.connect(target, on_error=on_error)


def feed_for(target: Path | str) -> ChangeFeed:
    """The gate's change feed of the database settings.db names (opened by its first read)."""
    if isinstance(target, Path):
        from domaingate.store.sqlite.feed import SqliteFeed

        return SqliteFeed(target)
    from domaingate.store.postgres.feed import PostgresFeed

    return PostgresFeed(target)
