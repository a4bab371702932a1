"""What settings.db names, typed: a SQLite file or a PostgreSQL server. Parsed with the other
settings (`domaingate.settings_values.parse_db`); the store chooses its backend by this type
alone (`domaingate.store.backends`). A target is shown without its password."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_PASSWORD_PARAMETER = re.compile(r"((?:^|&)password=)[^&]*")


@dataclass(frozen=True, slots=True)
class SqliteFile:
    """The embedded default: one SQLite file (WAL) shared by the processes of one edge."""

    path: Path

    @property
    def location(self) -> Path:
        """What DB names: the file."""
        return self.path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A PostgreSQL database, by its `postgresql://` URL, shared by several edges."""

    url: str = field(repr=False)

    @property
    def location(self) -> str:
        """What DB names: the URL, password included (never to be shown)."""
        return self.url

    def __str__(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        query = _PASSWORD_PARAMETER.sub(r"\1***", parts.query)
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    def __repr__(self) -> str:
        return f"PostgresServer({self})"


DatabaseTarget = SqliteFile | PostgresServer


def described(target: DatabaseTarget) -> str:
    """settings.db for messages and logs: the file, or the URL without its password."""
    return str(target)
